"""Sources and the frame queue: pacing, looping, reconnection, the latest-frame policy."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp.capture import Frame, Reconnecting, open_source, opencv
from camapp.capture.base import source_name
from camapp.capture.opencv import CaptureSource, FileSource, _frame_rate
from camapp.errors import ConfigError, SourceError
from tests.conftest import SHARED_MEDIA, lone_queue


def frame(seq: int) -> Frame:
    return Frame(seq, time.time(), np.zeros((2, 2, 3), np.uint8), time.monotonic())


def test_file_source_reads_every_frame_in_bgr(photos_clip) -> None:
    video, meta = photos_clip
    source = open_source(str(video), realtime=False)
    assert isinstance(source, FileSource) and not source.live and source.fps == meta["fps"]
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
    source.close()
    assert [f.seq for f in frames] == list(range(meta["frames"]))
    assert all(f.bgr and f.image.shape == (480, 640, 3) for f in frames)
    # Each frame owns its pixels: queued frames must not change under the workers.
    assert not np.shares_memory(frames[0].image, frames[1].image)


def test_realtime_replay_is_paced_at_the_file_rate(photos_clip) -> None:
    video, meta = photos_clip
    source = FileSource(video, realtime=True)
    start = time.monotonic()
    for _ in range(11):
        source.read()
    source.close()
    # Frame 10 is due 10 frame periods after frame 0 (a lower bound: it cannot come early).
    assert time.monotonic() - start >= 10 / meta["fps"] - 0.01


def test_loop_keeps_counting_frames(photos_clip) -> None:
    video, meta = photos_clip
    source = FileSource(video, realtime=False, loop=True)
    seqs = [source.read().seq for _ in range(meta["frames"] + 5)]
    source.close()
    assert seqs == list(range(meta["frames"] + 5))


class FlakyCamera:
    """Stands in for a USB camera that is unplugged after `fail_after` frames."""

    live, fps = True, 10.0

    def __init__(self, fail_after: int) -> None:
        self.name, self.n, self.fail_after, self.closed = "usb:9", 0, fail_after, False

    def read(self) -> Frame:
        if self.n >= self.fail_after:
            raise SourceError("no frame from usb:9")
        self.n += 1
        return frame(self.n - 1)

    def close(self) -> None:
        self.closed = True


def test_reconnecting_reopens_with_backoff_and_keeps_sequence() -> None:
    opened: list[FlakyCamera] = []
    attempts = 0

    def opener() -> FlakyCamera:
        nonlocal attempts
        attempts += 1
        if attempts < 3:  # still unplugged twice
            raise SourceError("cannot open camera or stream: usb:9")
        opened.append(FlakyCamera(fail_after=100))
        return opened[-1]

    first = FlakyCamera(fail_after=2)
    source = Reconnecting(opener, threading.Event(), first, min_delay=0.01, max_delay=0.02)
    seqs = [source.read().seq for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    assert first.closed and attempts == 3 and source.reconnects == 1


def test_reconnecting_gives_up_waiting_when_stopped() -> None:
    stop = threading.Event()

    def never() -> FlakyCamera:
        raise SourceError("cannot open camera or stream: usb:9")

    source = Reconnecting(never, stop, FlakyCamera(fail_after=0), min_delay=5, max_delay=5)
    threading.Timer(0.1, stop.set).start()
    start = time.monotonic()
    assert source.read() is None
    assert time.monotonic() - start < 4  # woke on stop, not at the end of the 5 s backoff


def test_bad_source_specs() -> None:
    from camapp.errors import ConfigError

    with pytest.raises(ConfigError, match="expected usb:N"):
        open_source("usb:x")
    with pytest.raises(ConfigError, match="expected usb:N, N from 0 to 255"):
        open_source("usb:99999999999999999999999")  # OpenCV's own 7-line error, and exit 1
    with pytest.raises(ConfigError, match="expected picamera or picamera:N"):
        open_source("picamera:x")
    with pytest.raises(SourceError, match="cannot open camera or stream"):
        open_source("rtsp://127.0.0.1:9/none")


def test_latest_frame_policy_evicts_the_stalest() -> None:
    hub, q = lone_queue(2, drop_oldest=True)
    for i in range(5):
        q.put(frame(i))
    assert q.dropped == 3
    q.close()
    assert [(t, f.seq) for _, t, f in iter(lambda: hub.get(0), None)] == [(0, 3), (1, 4)]


def test_no_drop_policy_blocks_instead_of_dropping() -> None:
    from camapp.runtime.frames import REPLAY_BYTES

    # Frames over the bytes a replay's queue may hold: it keeps the one slot it was made with.
    big = np.zeros((REPLAY_BYTES // 3072 + 1, 1024, 3), np.uint8)
    hub, q = lone_queue(1, drop_oldest=False)
    q.put(Frame(0, 0.0, big, 0.0))
    putter = threading.Thread(target=q.put, args=(Frame(1, 0.0, big, 0.0),))
    putter.start()
    putter.join(0.2)
    assert putter.is_alive()  # blocked on the full queue
    assert hub.get(0)[2].seq == 0
    putter.join(5)
    assert not putter.is_alive() and hub.get(0)[2].seq == 1 and q.dropped == 0


def test_forced_close_counts_discarded_frames() -> None:
    hub, q = lone_queue(2, drop_oldest=False)
    for i in range(2):
        q.put(frame(i))
    blocked = threading.Thread(target=q.put, args=(frame(2),))
    blocked.start()
    blocked.join(0.2)
    q.close(discard=True)  # what a second signal or a failed worker does
    blocked.join(5)
    # The queued frames and the one the capture thread was trying to put are all counted.
    assert not blocked.is_alive() and q.discarded == 3 and hub.get(0) is None


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    from camapp.errors import ConfigError

    with pytest.raises(ConfigError, match="video file not found"):
        open_source(str(tmp_path / "none.mp4"))


def test_a_file_that_is_not_a_video_fails_quietly(tmp_path: Path, capfd) -> None:
    # One decoder thread is asked for when opening: that must not make OpenCV print warnings.
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(ConfigError, match="cannot open video file"):
        FileSource(bad)
    assert capfd.readouterr().err == ""


class ReportedRate:
    """What `_frame_rate` reads of a VideoCapture: the rate its container or driver reports."""

    def __init__(self, fps: float) -> None:
        self.fps = fps

    def get(self, prop: int) -> float:
        assert prop == cv2.CAP_PROP_FPS
        return self.fps


def test_a_reported_rate_that_cannot_be_a_frame_rate_counts_as_unknown() -> None:
    # Streams report their RTP clock (90000) and broken files NaN or -1: the governor must
    # measure the rate instead of planning strides for those.
    rates = [90000.0, float("nan"), float("inf"), -1.0, 0.0, 12.5, 600.0]
    assert [_frame_rate(ReportedRate(r)) for r in rates] == [0, 0, 0, 0, 0, 12.5, 600.0]


def test_stream_passwords_never_reach_logs_or_errors() -> None:
    assert (
        source_name("rtsp://admin:s3cr@t@cam.lan:554/live") == "rtsp://admin:***@cam.lan:554/live"
    )
    assert source_name("rtsp://u:pa/ss@cam.lan/live") == "rtsp://u:***@cam.lan/live"  # raw '/'
    assert source_name("rtsp://viewer@cam.lan/live") == "rtsp://viewer@cam.lan/live"  # no password
    assert source_name("http://cam.lan/a@b") == "http://cam.lan/a@b"  # '@' in the path only
    assert source_name("usb:0") == "usb:0"


def test_a_stream_that_never_answers_fails_within_the_timeout(monkeypatch) -> None:
    # FFmpeg would wait 30 s, longer than systemd waits for a stop.
    monkeypatch.setattr(opencv, "STREAM_TIMEOUT_MS", 1000)
    with socket.socket() as silent:  # accepts the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"rtsp://admin:hunter2@127.0.0.1:{silent.getsockname()[1]}/live"
        started = time.monotonic()
        with pytest.raises(SourceError) as failed:
            CaptureSource(url)
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(failed.value) and "admin:***@127.0.0.1" in str(failed.value)


def corrupt_copy(tmp_path: Path) -> Path:
    """car-detection.mp4 with 2000 random bytes in its middle: FFmpeg cannot decode frame 218
    but every other one (found by trying seeds; the bytes are the same every run)."""
    rng = random.Random(9)
    data = bytearray((SHARED_MEDIA / "car-detection.mp4").read_bytes())
    start = len(data) // 4 + rng.randrange(len(data) // 2)
    for i in range(2000):
        data[start + i] = rng.randrange(256)
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


def test_a_corrupt_stretch_is_skipped_not_taken_for_the_end(tmp_path: Path) -> None:
    source = FileSource(corrupt_copy(tmp_path), realtime=False)
    try:
        seqs = [frame.seq for frame in iter(source.read, None)]
    finally:
        source.close()
    assert source.undecodable == 1 and len(seqs) == 376
    assert seqs == [n for n in range(377) if n != 218]  # the gap is where the frame was


def test_loop_replays_a_file_that_cannot_seek_back(tmp_path: Path) -> None:
    """A raw MJPEG (or H.264) stream saved as a file: OpenCV's seek to frame 0 says it
    worked and nothing decodes after it, so a --loop replay ended after one pass."""
    path = tmp_path / "raw.mjpeg"
    shades = [np.full((48, 64, 3), 40 * n, np.uint8) for n in range(5)]
    path.write_bytes(b"".join(cv2.imencode(".jpg", image)[1].tobytes() for image in shades))
    source = FileSource(path, realtime=False, loop=True)
    try:
        frames = [source.read() for _ in range(12)]
    finally:
        source.close()
    assert all(frame is not None for frame in frames)
    assert [frame.seq for frame in frames] == list(range(12))
    means = [round(float(frame.image.mean()) / 40) for frame in frames]
    assert means == [0, 1, 2, 3, 4] * 2 + [0, 1]
    # Gone, or a FIFO in its place, before the next pass: the replay ends there, as a file's
    # end does, neither with an error on the capture thread nor waiting on the FIFO.
    for replace in (lambda: None, lambda: os.mkfifo(path)):
        path.write_bytes(b"".join(cv2.imencode(".jpg", image)[1].tobytes() for image in shades))
        source = FileSource(path, realtime=False, loop=True)
        try:
            assert [source.read() is not None for _ in range(5)] == [True] * 5
            path.unlink()
            replace()
            ended: list[Frame | None] = []
            reader = threading.Thread(
                target=lambda s=source, e=ended: e.append(s.read()), daemon=True
            )
            reader.start()
            reader.join(10)
            assert ended == [None]
        finally:
            source.close()
            path.unlink(missing_ok=True)


def variable_rate_clip(tmp_path: Path) -> Path:
    """20 frames, 10 a second, then 2 a second: its container says 10 fps over 5.6 s, so
    OpenCV takes it for 56 frames (duration x rate), as for any variable frame rate."""
    path = tmp_path / "vfr.mkv"
    timing = "setpts='(if(lt(N,10),N/10,1+(N-10)/2))/TB'"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc=size=64x48:rate=10", "-frames:v", "20", "-vf", timing,
         "-fps_mode", "vfr", "-enc_time_base", "1/1000", "-c:v", "mjpeg", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_a_variable_frame_rate_file_ends_without_undecodable_frames_or_gaps(
    tmp_path: Path,
) -> None:
    """The frames the container's estimate promised past the real end are not a corrupt
    stretch: none counted undecodable, and a loop's frame numbers go on without a jump
    (they jumped by 36 at every pass)."""
    source = FileSource(variable_rate_clip(tmp_path), realtime=False, loop=True)
    try:
        seqs = [source.read().seq for _ in range(50)]
    finally:
        source.close()
    assert source.undecodable == 0
    assert seqs == list(range(50))


@pytest.mark.parametrize(("contain", "size"), [(False, (398, 224)), (True, (224, 126))])
def test_memory_frames_come_as_a_pi_isp_would_scale_them(contain: bool, size) -> None:
    """Frames in memory (the bench's Pi-like source) cover a cropping model's input, and fit
    a letterboxing model's, as a Pi camera's lores stream is sized for each."""
    source = open_source(f"memory:{SHARED_MEDIA / 'car-detection.mp4'}", model_size=224,
                         contain=contain)  # fmt: skip
    frame = source.read()
    assert frame is not None and frame.image.shape == (size[1], size[0], 3)
