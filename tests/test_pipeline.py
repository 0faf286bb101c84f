"""The pipeline on the real clip and model: order, stride, pause, graceful stop."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from camapp.app import signal_handler
from camapp.capture import Frame, Reconnecting
from camapp.capture.opencv import FileSource
from camapp.errors import SourceError
from camapp.inference import loader
from camapp.inference.classifier import Classifier
from camapp.runtime.camera import CameraPlan, Result
from camapp.runtime.controls import Controls
from camapp.runtime.pipeline import Pipeline
from tests.conftest import SHARED_MODELS, lone_queue, make_classifier, single_camera
from tests.test_sources import FlakyCamera


class ListSink:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def send(self, result: Result) -> None:
        self.results.append(result)


def make(model_path: Path, labels: list[str], video: Path, workers: int, **kwargs) -> tuple:
    classifiers = [make_classifier(model_path, labels) for _ in range(workers)]
    sink = ListSink()
    controls = kwargs.pop("controls", Controls())
    source = FileSource(video, realtime=False)
    pipeline, camera = single_camera(source, classifiers, [sink], False, controls, **kwargs)
    return pipeline, camera, sink


def one(report):
    """The one camera's stats, with the run's errors."""
    [stats] = report.cameras.values()
    return stats, report.errors


def test_three_workers_publish_in_frame_order(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, _, sink = make(model_path, labels, video, workers=3)
    stats, errors = one(pipeline.run())
    assert [r.frame for r in sink.results] == list(range(meta["frames"]))
    assert stats.captured == stats.classified == meta["frames"] and not errors


def test_results_out_of_order_reach_the_sinks_in_ticket_order(
    model_path, labels, photos_clip
) -> None:
    """The reorder buffer alone: results handed in as workers finish them, out of order,
    leave in ticket order, each the moment every earlier one is in."""
    video, _ = photos_clip
    _, camera, sink = make(model_path, labels, video, workers=2)
    top = make_classifier(model_path, labels).classify(np.zeros((224, 224, 3), np.uint8))
    emitted = []
    for ticket in (2, 0, 1, 4, 3, 5):
        camera.deliver(ticket, Result(ticket, 0.0, 0.0, top))
        emitted.append([r.frame for r in sink.results])
    assert emitted == [[], [0], [0, 1, 2], [0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]]
    assert camera.stats.classified == 6


def test_stride_classifies_one_frame_in_n(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, _, sink = make(model_path, labels, video, 2, controls=Controls(stride=4))
    stats, _ = one(pipeline.run())
    assert [r.frame for r in sink.results] == list(range(0, meta["frames"], 4))
    assert stats.skipped["stride"] == meta["frames"] - len(sink.results)


def test_paused_classifies_nothing_but_keeps_reading(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, _, sink = make(model_path, labels, video, 2, controls=Controls(paused=True))
    stats, _ = one(pipeline.run())
    assert sink.results == [] and stats.skipped["paused"] == stats.captured == meta["frames"]


def test_max_frames_and_stop(model_path, labels, photos_clip) -> None:
    video, _ = photos_clip
    pipeline, _, sink = make(model_path, labels, video, 2, max_frames=7)
    assert one(pipeline.run())[0].classified == 7 and len(sink.results) == 7

    pipeline, _, sink = make(model_path, labels, video, 2)
    pipeline.stop()  # before start: nothing is captured, nothing hangs
    assert one(pipeline.run())[0].captured == 0


def test_each_put_reaches_an_active_worker() -> None:
    # A put wakes one waiter only: a worker parked by the governor must never be that one.
    hub, frames = lone_queue(2, drop_oldest=False)
    hub.set_demand(frames, 1)
    got: dict[int, tuple | None] = {}
    waiters = [threading.Thread(target=lambda i=i: got.update({i: hub.get(i)})) for i in (0, 1)]
    for waiter in reversed(waiters):  # the parked worker 1 starts waiting first
        waiter.start()
        time.sleep(0.1)
    frames.put(Frame(0, 0.0, np.zeros((2, 2, 3), np.uint8), 0.0))
    waiters[0].join(2)
    assert list(got) == [0] and got[0] is not None and got[0][1] == 0
    frames.close()
    waiters[1].join(2)
    assert got[1] is None  # the parked worker leaves once the queue closes


def test_an_unexpected_worker_error_ends_the_run_with_its_reason(
    model_path, labels, photos_clip
) -> None:
    video, _ = photos_clip
    pipeline, _, sink = make(model_path, labels, video, workers=2)
    pool = pipeline.pools[0]
    broken = next(iter(pool.caches[1].values()))
    calls = 0

    def classify(image, bgr=False, crop="center", roi=None):  # a bug deep in a worker
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ValueError("boom")
        return Classifier.classify(broken, image, bgr, crop, roi)

    broken.classify = classify
    stats, errors = one(pipeline.run())  # no-drop capture blocked on a full queue: no hang
    assert [str(e) for e in errors] == ["inference failed: ValueError: boom"]
    frames = [r.frame for r in sink.results]
    assert frames == sorted(frames) and len(frames) < 60
    assert stats.captured == stats.classified + stats.discarded + 1  # the frame that failed


@pytest.mark.parametrize("signals", [1, 2])
def test_only_the_users_second_signal_discards_queued_frames(
    signals: int, model_path, labels, photos_clip
) -> None:
    # --duration (or a failure) stops the run first; then the user signals. One signal still
    # classifies every queued frame; a second throws them away, counted: nothing is lost
    # silently either way.
    video, _ = photos_clip
    pipeline, _, _ = make(model_path, labels, video, workers=2)
    for cache in pipeline.pools[0].caches:
        [classifier] = cache.values()
        slow = classifier.classify
        classifier.classify = lambda image, bgr=False, crop="center", roi=None, slow=slow: (
            time.sleep(0.3),
            slow(image, bgr, crop, roi),
        )[1]
    on_signal = signal_handler(pipeline)  # what `camapp run` installs for SIGINT and SIGTERM
    threading.Timer(0.5, pipeline.stop).start()  # --duration
    for n in range(signals):
        threading.Timer(0.6 + 0.1 * n, on_signal, (signal.SIGTERM, None)).start()
    started = time.monotonic()
    stats, errors = one(pipeline.run())
    assert time.monotonic() - started < 5
    assert (stats.discarded > 0) == (signals == 2) and not errors
    assert stats.captured == stats.classified + stats.discarded


def test_duration_ends_a_run_whose_camera_is_unplugged(model_path, labels) -> None:
    def unplugged() -> FlakyCamera:
        raise SourceError("cannot open camera or stream: usb:9")

    stop = threading.Event()
    source = Reconnecting(unplugged, stop, FlakyCamera(fail_after=3), min_delay=0.05)
    sink = ListSink()
    pipeline, _ = single_camera(source, [make_classifier(model_path, labels)], [sink], True,
                                Controls(), duration=0.5, stopping=stop)  # fmt: skip
    started = time.monotonic()
    stats, errors = one(pipeline.run())
    assert time.monotonic() - started < 3 and stats.captured == 3 and not errors


def test_workers_keep_only_the_models_a_camera_uses(photos_clip) -> None:
    """A `set {"model": ...}` plans the model afresh each time. Workers share a model planned
    again (same file, same content: no reload) and release the models no camera's ladder
    names any more before loading another, so 40 switches among three models leave each
    worker one model, not 40 (each switch used to add one to every worker for good)."""
    video, meta = photos_clip
    models = [
        SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite",
        SHARED_MODELS / "mobilenet_v1_0.5_160_quant.tflite",
        SHARED_MODELS / "mobilenet_v1_0.75_192_quant.tflite",
    ]
    loads: list[str] = []

    def load(setup: loader.ModelSetup) -> Classifier:
        loads.append(setup.name)
        return loader.load_checked(setup)

    pipeline = Pipeline()
    pool = pipeline.add_pool(2, load)
    first = loader.plan(str(models[0]))
    plan = CameraPlan("cam0", "center", None, None, None)
    held: list[int] = []

    class Switcher:
        """After each of the camera's first 40 results, a `set` as the command does it: the
        model planned afresh, another one every second time."""

        def send(self, result: Result) -> None:
            held.append(max(len(cache) for cache in pool.caches))
            if result.frame < 40:
                camera.switch((loader.plan(str(models[result.frame // 2 % 3])),))

    source = FileSource(video, realtime=False)
    camera = pipeline.add_camera(plan, (first,), source, [Switcher()], Controls(), pool, False)
    stats, errors = one(pipeline.run())
    assert not errors and stats.classified == meta["frames"]
    assert max(held) == 1, held  # the model in use, the others released
    # A model planned again is the same model: loaded once per change, not once per `set`.
    assert len(set(loads)) == 3 and len(loads) <= 2 * 21


def test_a_capture_slot_keeps_the_first_job_and_runs_it_on_the_next_frame(
    model_path, labels, photos_clip
) -> None:
    """A crop and a whole frame asked for at the same instant: the capture thread runs the
    first with its next frame; the second is dropped (said in the log), never swapped in
    silently for the first."""
    video, _ = photos_clip
    _, camera, _ = make(model_path, labels, video, workers=1)
    ran: list[str] = []
    camera.keep_next(lambda frame: ran.append("crop"))
    camera.keep_next(lambda frame: ran.append("frame"))
    assert camera.capture_pending
    camera._save(Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8), 0.0))
    assert ran == ["crop"] and not camera.capture_pending


class CountedCondition(threading.Condition):
    """The queue's own condition, counting how often the capture thread is woken."""

    woken = 0

    def notify(self, n: int = 1) -> None:
        self.woken += 1
        super().notify(n)


@pytest.mark.parametrize(
    ("shape", "depth"),
    # 12 B; 267 KB (the memory replay's 398x224, as a Pi's lores stream); 1 MB (768x432 decoded)
    [((2, 2, 3), 32), ((224, 398, 3), 15), ((432, 768, 3), 4)],
)
def test_a_blocked_replay_is_woken_once_per_half_a_queue_not_per_frame(
    shape: tuple[int, int, int], depth: int
) -> None:
    """A replay's capture thread fills a queue faster than the worker empties it: it waits,
    and is woken again only once the queue is down to half, not after every frame taken:
    each wake-up on two busy cores preempts a worker. The queue holds 4 MB of frames, so
    small ones wake it seldom, and large ones never hold more than that."""
    from camapp.runtime.frames import REPLAY_BYTES

    hub, queue = lone_queue(4, drop_oldest=False, workers=1)
    queue._freed = CountedCondition(hub.lock)
    frames = 80
    image = np.zeros(shape, np.uint8)
    capture = threading.Thread(
        target=lambda: [queue.put(Frame(n, 0.0, image, 0.0)) for n in range(frames)]
    )
    capture.start()
    taken, held = [], 0
    while len(taken) < frames:
        time.sleep(0.002)  # slower than the capture thread: it is blocked at every take
        held = max(held, len(queue))
        got = hub.get(0)
        assert got is not None
        taken.append(got[2].seq)
    capture.join(5)
    assert taken == list(range(frames))
    assert held == depth and held * image.nbytes <= max(REPLAY_BYTES, 4 * image.nbytes)
    assert queue._freed.woken <= frames // (depth // 2) + 1, queue._freed.woken
