"""Video files, USB/V4L2 cameras and network streams, decoded by OpenCV (FFmpeg, V4L2)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from camapp.capture.base import Frame, source_name
from camapp.errors import ConfigError, SourceError, shorten

log = logging.getLogger(__name__)

MAX_USB_INDEX = 255  # /dev/video0 .. /dev/video255
URL_HINT = " (a '/', '?' or '#' in a password is written %2F, %3F, %23)"
MAX_GAP = 250  # undecodable frames in a row after which a file is taken to have ended
MAX_LAG = 1.0  # s a paced replay may run behind its clock before the clock is moved instead
MAX_FPS = 1000.0  # a reported rate above this is a clock, not a frame rate (RTP says 90000)
# FFmpeg waits 30 s by default for a stream to open or deliver: longer than systemd waits for
# a stop, and every shutdown, --duration and reconnection would wait behind it.
STREAM_TIMEOUT_MS = 5000


def _frame_rate(cap: cv2.VideoCapture) -> float:
    """The frame rate the container or driver reports, or 0 (unknown) if it cannot be one."""
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0 < fps <= MAX_FPS else 0.0


def open_video(path: Path) -> cv2.VideoCapture:
    """A video file opened to decode, or one line saying why not (missing, no regular file:
    a FIFO would be waited on for ever, not a video). One decoder thread: FFmpeg's frame
    threads cost about a third more CPU per frame and compete with the inference workers for
    the cores; one thread decodes 1400 frames/s."""
    if not path.is_file():
        why = "is not a regular file" if path.exists() else "not found"
        raise ConfigError(f"video file {why}: {shorten(path)}")
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise ConfigError(
            f"cannot open video file (not a video, or unsupported codec): {shorten(path)}"
        )
    return cap


class FileSource:
    """A video file, paced at its own frame rate (`realtime`) or read as fast as it decodes.

    Frames stay in OpenCV's BGR order: the preprocessor swaps channels after resizing, where it
    costs a tenth as much. Each `Frame.image` is a fresh array, since the frame may still sit in
    a queue or a worker while the next one is decoded.
    """

    live = False

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False) -> None:
        self.path = Path(path)
        if not str(path):  # Path("") is ".", which is no file either
            raise ConfigError("video file: the path is empty")
        self._cap = open_video(self.path)
        self.name = shorten(self.path.name)
        self.fps = _frame_rate(self._cap)
        if realtime and not self.fps:
            log.warning(
                "%s gives no usable frame rate: replaying it as fast as it decodes", self.name
            )
        self.paced = realtime and self.fps > 0
        self.loop = loop
        self._length = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0  # 0: unknown
        self._seq = 0
        self._decoded = 0
        self._read = 0  # frames of this pass through the file, decoded or not
        self.undecodable = 0  # frames skipped because they would not decode
        self._short = False  # the end came before the container's length said (logged once)
        self._start: float | None = None  # monotonic time frame 0 was due, for pacing
        # The first frame is decoded now: a file with none is a set-up error found before
        # the camera is announced, not after (it would leave its retained topics behind).
        self._first: np.ndarray | None = self._decode()[1]
        if self._first is None:
            self._cap.release()
            raise ConfigError(f"video file has no decodable frame: {shorten(self.path)}")

    def read(self) -> Frame | None:
        # Wait first, then decode, as a camera would: decoding the next frame straight after
        # handing one over kept a core busy just when a worker woke up to classify it, which
        # delayed it by a whole decode (the scheduler wakes it on the decoding core).
        self._pace()
        if self._first is not None:
            ok, bgr, self._first = True, self._first, None
        else:
            ok, bgr = self._decode()
        if not ok and self.loop and self._decoded:
            ok, bgr = self._rewind()
        if not ok:
            return None
        frame = Frame(self._seq, time.time(), bgr, time.monotonic(), bgr=True)
        self._seq += 1
        self._decoded += 1
        return frame

    def _rewind(self) -> tuple[bool, np.ndarray]:
        """The first frame again, for a loop: by a seek or, where the file cannot seek back
        (a raw H.264 or MJPEG stream: the seek says it did, then nothing decodes), by opening
        it again, rather than ending the replay after one pass."""
        self._read = 0
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, bgr = self._decode()
        if not ok:
            self._cap.release()
            try:  # checked again: a FIFO put in the file's place would be waited on for ever
                self._cap = open_video(self.path)
            except ConfigError as exc:  # removed or replaced meanwhile: the replay ends here
                log.warning("%s: cannot open it again to loop: %s", self.name, exc)
                return False, bgr
            ok, bgr = self._decode()
        return ok, bgr

    def _decode(self) -> tuple[bool, np.ndarray]:
        """The next frame that decodes: a corrupt stretch of the file is skipped (its frames
        counted in `undecodable`, their numbers left as gaps), not taken for the end.

        Failures up to the end are not a stretch: the length is the container's word, an
        estimate (duration x rate) for a variable frame rate, and a truncated file has no
        more frames. They are said once, neither counted nor left as gaps (a loop's frame
        numbers would jump at every pass)."""
        ok, bgr = self._cap.read()
        gap = 0
        # OpenCV's position counts decoded frames only: what is left is known from the length.
        while not ok and gap < MAX_GAP and self._read + gap < self._length:
            gap += 1
            ok, bgr = self._cap.read()
        if ok:
            self.undecodable += gap
            self._seq += gap
            self._read += gap + 1
        elif 0 < self._read < self._length and not self._short:
            self._short = True
            log.info(
                "%s ended after %d frames, where its container gives %d (a variable frame"
                " rate, a truncated file, or more than %d frames in a row that do not decode)",
                self.name, self._read, self._length, MAX_GAP,
            )  # fmt: skip
        return ok, bgr

    def _pace(self) -> None:
        """Sleep until this frame is due, so a replay behaves like a camera at the file's fps."""
        if not self.paced:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._seq / self.fps
        if due > now:
            time.sleep(due - now)
        elif now - due > MAX_LAG:
            # Fell behind (slowed by the governor, or a slow machine): go on from here rather
            # than race through the backlog at full decode speed.
            self._start = now - self._seq / self.fps

    def close(self) -> None:
        self._cap.release()


class CaptureSource:
    """A USB/V4L2 camera (`usb:N` or a /dev/video path) or an RTSP/HTTP stream.

    A read failure raises SourceError; `camapp.capture.Reconnecting` retries it with backoff.
    """

    live = paced = True

    def __init__(self, spec: str, fps: float = 0.0) -> None:
        self.name = source_name(spec)
        if spec.startswith("usb:"):
            index = spec[4:]
            if not index.isdigit() or int(index) > MAX_USB_INDEX:
                raise ConfigError(
                    f"bad USB camera '{shorten(spec[:40])}': expected usb:N,"
                    f" N from 0 to {MAX_USB_INDEX}"
                )
            self._cap = cv2.VideoCapture(int(index))
        elif "://" in spec:
            _check_url(spec, self.name)
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            self._cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, timeouts)
        else:
            self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open camera or stream: {self.name}")
        if fps > 0:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.fps = _frame_rate(self._cap) or fps
        self._seq = 0

    def read(self) -> Frame | None:
        ok, bgr = self._cap.read()
        if not ok:
            raise SourceError(f"no frame from {self.name}")
        frame = Frame(self._seq, time.time(), bgr, time.monotonic(), bgr=True)
        self._seq += 1
        return frame

    def close(self) -> None:
        self._cap.release()


def _check_url(spec: str, name: str) -> None:
    """A stream URL with a host, else a usage error (exit 2): `rtsp://` alone is a typo that
    no retry mends, where opening it failed as an unreachable stream does (exit 1)."""
    try:
        parts = urlsplit(spec)
        host, _ = parts.hostname, parts.port  # each raises on its own kind of nonsense
    except ValueError:  # never its words: they may quote a password cut at a raw '/?#'
        raise ConfigError(f"bad stream URL {name}: bad host or port{URL_HINT}") from None
    if not host:
        raise ConfigError(f"bad stream URL {name}: no host{URL_HINT}")
