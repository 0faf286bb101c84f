"""A pool of inference workers for one model, shared by every camera that uses that model.

Each worker thread owns one Classifier (backends are not thread-safe; LiteRT's invoke()
releases the GIL, so N workers use N cores). Workers take frames from the cameras' queues
through the pool's hub, fairly, and hand each result back to its camera.
"""

from __future__ import annotations

import threading

from camapp.inference.classifier import Classifier
from camapp.runtime.camera import Camera, FailHook, Result, as_error
from camapp.runtime.frames import Hub


class WorkerPool:
    def __init__(self, classifiers: list[Classifier], fail: FailHook) -> None:
        self.classifiers = classifiers
        self.hub: Hub[Camera] = Hub(len(classifiers))
        self._fail = fail
        self._threads: list[threading.Thread] = []

    def start(self, abort: threading.Event) -> None:
        for index, classifier in enumerate(self.classifiers):
            thread = threading.Thread(
                target=self._work,
                args=(classifier, index, abort),
                name=f"worker-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    @property
    def threads(self) -> list[threading.Thread]:
        return self._threads

    def close(self, discard: bool) -> None:
        for queue in list(self.hub.queues):
            queue.close(discard=discard)

    def _work(self, classifier: Classifier, index: int, abort: threading.Event) -> None:
        hub = self.hub
        while not abort.is_set():
            item = hub.get(index)
            if item is None:
                return
            queue, ticket, frame = item
            camera = queue.owner
            try:
                if frame.scores is None:
                    result = classifier.classify(frame.image, frame.bgr, camera.plan.crop)
                else:  # classified on the sensor
                    result = classifier.rank(frame.scores, frame.inference_ms)
            except Exception as exc:  # a dead worker would stall the frame order for good
                self._fail(as_error("inference", exc))
                self.close(discard=True)
                return
            camera.deliver(ticket, Result(frame.seq, frame.ts, frame.mono, result))
