"""The pipeline on the real clip and model: order, stride, pause, graceful stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from camapp.controls import Controls
from camapp.inference import Classifier
from camapp.pipeline import FrameQueue, Pipeline, Result
from camapp.sources import Frame
from camapp.sources.opencv import FileSource


class ListSink:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def send(self, result: Result) -> None:
        self.results.append(result)


def make(model_path: Path, labels: list[str], video: Path, workers: int, **kwargs) -> tuple:
    classifiers = [Classifier(model_path, labels) for _ in range(workers)]
    sink = ListSink()
    controls = kwargs.pop("controls", Controls())
    source = FileSource(video, realtime=False)
    return Pipeline(source, classifiers, [sink], False, controls, **kwargs), sink


def test_three_workers_publish_in_frame_order(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, sink = make(model_path, labels, video, workers=3)
    stats = pipeline.run()
    assert [r.frame for r in sink.results] == list(range(meta["frames"]))
    assert stats.captured == stats.classified == meta["frames"] and not stats.errors


def test_stride_classifies_one_frame_in_n(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, sink = make(model_path, labels, video, 2, controls=Controls(stride=4))
    stats = pipeline.run()
    assert [r.frame for r in sink.results] == list(range(0, meta["frames"], 4))
    assert stats.skipped["stride"] == meta["frames"] - len(sink.results)


def test_paused_classifies_nothing_but_keeps_reading(model_path, labels, photos_clip) -> None:
    video, meta = photos_clip
    pipeline, sink = make(model_path, labels, video, 2, controls=Controls(paused=True))
    stats = pipeline.run()
    assert sink.results == [] and stats.skipped["paused"] == stats.captured == meta["frames"]


def test_max_frames_and_stop(model_path, labels, photos_clip) -> None:
    video, _ = photos_clip
    pipeline, sink = make(model_path, labels, video, 2, max_frames=7)
    assert pipeline.run().classified == 7 and len(sink.results) == 7

    pipeline, sink = make(model_path, labels, video, 2)
    pipeline.stop()  # before start: nothing is captured, nothing hangs
    assert pipeline.run().captured == 0


def test_each_put_reaches_an_active_worker() -> None:
    # A put wakes one waiter only: a worker parked by the governor must never be that one.
    frames = FrameQueue(2, drop_oldest=False)
    frames.set_active(1)
    got: dict[int, tuple[int, Frame] | None] = {}
    waiters = [threading.Thread(target=lambda i=i: got.update({i: frames.get(i)})) for i in (0, 1)]
    for waiter in reversed(waiters):  # the parked worker 1 starts waiting first
        waiter.start()
        time.sleep(0.1)
    frames.put(Frame(0, 0.0, np.zeros((2, 2, 3), np.uint8), 0.0))
    waiters[0].join(2)
    assert list(got) == [0] and got[0] is not None and got[0][0] == 0
    frames.close()
    waiters[1].join(2)
    assert got[1] is None  # the parked worker leaves once the queue closes
