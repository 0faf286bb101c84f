"""The pool of inference workers, shared by every camera of the process.

Each worker thread owns its models (backends are not thread-safe; LiteRT's invoke()
releases the GIL, so N workers use N cores): one per model it has been asked for, loaded on
first use and kept while a camera may still use it. A worker's cache is keyed by what the
model is (`ModelSetup.key`: file, content, labels, backend; `DetectorSpec.key` likewise), so
cameras and switches back to a model share one copy; when a worker loads a new model it
first releases those no camera's ladder names any more, so switching models at run time does
not grow memory. Workers take frames from the cameras' queues through the hub, fairly,
classify each (a detector camera's: `detect`, then its tracked labels' crops classified every
`classify_every` processed frames, or every frame while a new track has too few votes) with
the model its camera uses at that moment
(`Camera.current`: a switch of model, by the governor's ladder or a `set` command, takes
effect at the next frame while frames in flight finish on the old one) and hand each result
back to its camera.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from camapp.inference.classifier import Classifier
from camapp.inference.detector import Detector, classify_crops
from camapp.inference.loader import Model, Planned
from camapp.runtime.camera import Camera, CameraPlan, FailHook, Result, as_error
from camapp.runtime.frames import Hub

Loader = Callable[[Planned], Model]


class WorkerPool:
    def __init__(self, workers: int, load: Loader, fail: FailHook) -> None:
        self.hub: Hub[Camera] = Hub(workers)
        self._load = load
        self._fail = fail
        # Worker i's classifiers, by model key; only worker i touches caches[i] once running.
        self.caches: list[dict[tuple[object, ...], Model]] = [{} for _ in range(workers)]
        self.threads: list[threading.Thread] = []

    @property
    def workers(self) -> int:
        return len(self.caches)

    def seed(self, setup: Planned, classifiers: list[Model]) -> None:
        """Give workers classifiers already loaded (and checked) for `setup`, before start."""
        for cache, classifier in zip(self.caches, classifiers, strict=False):
            cache[setup.key] = classifier

    def start(self, abort: threading.Event) -> None:
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._work, args=(index, abort), name=f"worker-{index}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def close(self, discard: bool) -> None:
        for queue in list(self.hub.queues):
            queue.close(discard=discard)

    def _work(self, index: int, abort: threading.Event) -> None:
        hub, cache = self.hub, self.caches[index]
        while not abort.is_set():
            item = hub.get(index)
            if item is None:
                return
            queue, ticket, frame = item
            camera = queue.owner
            try:
                setup = camera.current
                classifier = cache.get(setup.key)
                if classifier is None:  # a model this worker does not hold: load it once
                    classifier = self._hold(cache, setup)
                plan = camera.plan
                if isinstance(classifier, Detector):  # a detector camera's model
                    result = classifier.detect(frame.image, frame.bgr, plan.roi)
                    every = plan.classify_every
                    if plan.classify and (plan.eager.is_set() or ticket % every == 0):
                        crops = self._crop_classifiers(cache, plan)
                        result = classify_crops(result, frame.image, frame.bgr, crops)
                elif frame.scores is None:
                    result = classifier.classify(frame.image, frame.bgr, plan.crop, plan.roi)
                else:  # classified on the sensor
                    result = classifier.rank(frame.scores, frame.inference_ms)
            except Exception as exc:  # a dead worker would stall the frame order for good
                self._fail(as_error("inference", exc))
                self.close(discard=True)
                return
            camera.deliver(ticket, Result(frame.seq, frame.ts, frame.mono, result, frame))

    def _crop_classifiers(
        self, cache: dict[tuple[object, ...], Model], plan: CameraPlan
    ) -> dict[str, tuple[Classifier, str]]:
        """The classifier of each label a detector camera classifies (loaded on first use,
        as its detector), and how its crops fit in: as the model was trained, else stretched."""
        chosen: dict[str, tuple[Classifier, str]] = {}
        for label, setup in plan.classify.items():
            classifier = cache.get(setup.key) or self._hold(cache, setup)
            chosen[label] = (classifier, setup.crop or "stretch")  # type: ignore[assignment]
        return chosen

    def _hold(self, cache: dict[tuple[object, ...], Model], setup: Planned) -> Model:
        """Load a model into this worker's cache, once those no camera names are let go."""
        self._release(cache)
        model = cache[setup.key] = self._load(setup)
        return model

    def _release(self, cache: dict[tuple[object, ...], Model]) -> None:
        """Drop the classifiers of models no camera's ladder names any more (a model switched
        away from). Only this worker uses its cache, so none is in use meanwhile."""
        wanted = {
            setup.key
            for queue in list(self.hub.queues)
            for setup in (*queue.owner.ladder, *queue.owner.plan.classify.values())
        }
        for key in [key for key in cache if key not in wanted]:
            del cache[key]
