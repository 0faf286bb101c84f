"""The frame tap (runtime/tap.py): filled only while watched, at the capped rate, never
blocking the capture thread; its encoding counted in the camera's share of the CPU."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from camapp.capture.base import Frame
from camapp.capture.opencv import FileSource
from camapp.governor.controller import Controller
from camapp.governor.loop import Governor
from camapp.runtime.controls import Controls
from camapp.runtime.tap import FrameTap
from tests.conftest import SHARED_MEDIA, make_classifier, single_camera
from tests.test_governor import REPLAY, FakeClock, FakePipeline, FakeSensors
from tests.web_helpers import decode_jpeg


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    source = FileSource(SHARED_MEDIA / "car-detection.mp4", realtime=False)  # 768x432, BGR
    try:
        return [source.read() for _ in range(3)]
    finally:
        source.close()


def at(frame: Frame, mono: float, seq: int = 0) -> Frame:
    return Frame(seq, frame.ts, frame.image, mono, frame.bgr)


def test_nothing_is_kept_while_nobody_watches(frames: list[Frame]) -> None:
    tap = FrameTap(fps=5)
    for i in range(10):
        tap.offer(at(frames[0], i * 0.5))
    assert tap.version == 0 and tap.next(0, timeout=0) is None
    with tap.watching():
        tap.offer(at(frames[0], 10.0, seq=7))
        got = tap.next(0, timeout=0)
    assert got is not None and got[1].seq == 7
    tap.offer(at(frames[0], 20.0, seq=8))  # nobody watches any more
    assert tap.next(got[0], timeout=0) is None


def test_the_rate_is_capped_without_halving_a_jittery_source(frames: list[Frame]) -> None:
    tap = FrameTap(fps=5)
    rng = np.random.default_rng(0)
    with tap.watching():
        # 10 s of a 10 fps source whose frames arrive up to 3 ms early or late: 5 a second.
        for i in range(100):
            tap.offer(at(frames[0], i * 0.1 + rng.uniform(-0.003, 0.003)))
        assert tap.version == 50
        # 30 fps for 10 s more: still 5 a second, on average.
        for i in range(300):
            tap.offer(at(frames[0], 10 + i / 30))
    assert 99 <= tap.version <= 101


def test_a_reader_waits_for_a_newer_frame_and_close_wakes_it(frames: list[Frame]) -> None:
    tap = FrameTap()
    got: list[object] = []
    with tap.watching():
        reader = threading.Thread(target=lambda: got.append(tap.next(0)))
        reader.start()
        tap.offer(at(frames[1], 1.0, seq=3))
        reader.join(5)
        assert got[0] is not None and got[0][1].seq == 3  # type: ignore[index]
        closed = threading.Thread(target=lambda: got.append(tap.next(tap.version)))
        closed.start()
        tap.close()
        closed.join(5)
    assert got[1] is None and tap.closed


def test_encoding_scales_down_converts_colours_and_counts_its_time(frames: list[Frame]) -> None:
    tap = FrameTap()
    frame = frames[2]
    picture = tap.encode(frame, max_width=384)
    image = decode_jpeg(picture.jpeg)
    assert image.shape == (216, 384, 3) and picture.seq == frame.seq
    expected = frame.image[::2, ::2].astype(float)
    assert np.abs(image.astype(float) - expected).mean() < 12  # BGR kept BGR, not swapped
    rgb = Frame(0, 0.0, frame.image[..., ::-1].copy(), 0.0, bgr=False)
    swapped = decode_jpeg(tap.encode(rgb, max_width=384).jpeg)
    assert np.abs(swapped.astype(float) - image.astype(float)).mean() < 3
    assert tap.spent_ms > 0


def test_the_capture_thread_fills_the_tap_only_while_watched(model_path) -> None:
    source = FileSource(SHARED_MEDIA / "car-detection.mp4", realtime=True)
    _, camera = single_camera(source, [make_classifier(model_path)], [], drop=True,
                              controls=Controls())  # fmt: skip
    camera.tap.set_rate(30)
    thread = threading.Thread(target=camera.capture)
    thread.start()
    try:
        assert camera.tap.next(0, timeout=1.0) is None  # frames flow, nobody watches
        assert camera.stats.captured > 0
        with camera.tap.watching():
            got = camera.tap.next(0, timeout=5)
        assert got is not None and got[1].image.shape == (432, 768, 3)
    finally:
        camera.stopping.set()
        thread.join(5)
    assert camera.tap.closed  # the end of capture wakes every reader


def test_the_governor_counts_encoding_in_a_cameras_cpu_share() -> None:
    clock, sensors = FakeClock(), FakeSensors()
    sensors.process_pct = 40.0
    viewed, other = FakePipeline(), FakePipeline()
    published: dict[str, list[dict]] = {"viewed": [], "other": []}
    governor = Governor(sensors, stats_interval=1.0, clock=clock)
    for name, pipeline in (("viewed", viewed), ("other", other)):
        controller = Controller(REPLAY, 2, 3.0)
        governor.add(pipeline, Controls(), controller, published[name].append)
    clock.now += 1.0
    for pipeline in (viewed, other):
        pipeline.advance(captured=10, classified=10, stride_skipped=0)  # 40 ms each
    viewed.view_ms += 120.0  # and 120 ms of JPEGs for a viewer
    governor.tick()
    assert published["viewed"][0]["cpu_pct"] == 40.0 * 160 / 200
    assert published["other"][0]["cpu_pct"] == 40.0 * 40 / 200


def test_the_live_views_encoder_encodes_only_for_viewers(frames: list[Frame]) -> None:
    from camapp.web.feed import CameraFeed
    from camapp.web.labelling import Labels

    tap = FrameTap(fps=1000)
    labels = Labels(SimpleNamespace(tap=tap), Path("unused"))  # type: ignore[arg-type]
    model = ("m", (224, 224), "center", None)
    feed = CameraFeed("cam0", tap, Controls(), None, model, 640, 5.0, labels)  # type: ignore[arg-type]
    woken = threading.Event()
    encoder = threading.Thread(target=feed.encode, args=(woken.set,))
    encoder.start()
    try:
        with tap.watching():  # a snapshot's look: the feed does not encode it
            tap.offer(at(frames[0], 1.0, seq=1))
            assert not woken.wait(0.3)
        assert feed.picture is None and tap.spent_ms == 0
        with feed.watch():
            tap.offer(at(frames[0], 2.0, seq=2))
            assert woken.wait(5)
        view = feed.picture
        assert view is not None and view.picture.seq == 2 and tap.spent_ms > 0
        # 768x432 into a square model: the centred 432x432 square.
        assert view.region == (0.2188, 0.0, 0.5625, 1.0)
    finally:
        tap.close()
        encoder.join(5)
    assert not encoder.is_alive()
