"""The model ladder: cheaper models with the same classes that a camera's governor may step
down to under a budget (`adapt = "model"` or `"auto"`), and back up from when there is room.

The rungs come from the `ladder` setting, else from the manifest (models of the same label
set with a ladder rank below the camera's model), fetched ones only. What a rung costs is
measured here, on this device, at start: a rung is kept only if it runs clearly faster than
the one above it (on x86 XNNPACK runs the published uint8 MobileNetV1 0.75 slower than the
int8 MobileNetV2, though it has fewer MACs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from camapp import models
from camapp.config.schema import CameraSettings
from camapp.errors import ConfigError
from camapp.inference import loader
from camapp.inference.classifier import Classifier
from camapp.inference.timing import median_invoke_ms

log = logging.getLogger(__name__)

CHEAPER = 0.8  # a rung must cost at most this fraction of the one above it
TIMED = 15  # invokes timed per rung (after one warm-up)


@dataclass(frozen=True)
class Ladder:
    setups: tuple[loader.ModelSetup, ...]  # rung 0: the camera's own model
    costs: tuple[float, ...]  # ms per invoke, measured here
    classifiers: tuple[Classifier, ...]  # loaded while measuring: the workers may keep them


def names_for(camera: CameraSettings, setup: loader.ModelSetup) -> list[str]:
    """The models below the camera's own: the `ladder` setting, else the manifest's."""
    if camera.ladder:
        return list(camera.ladder)
    spec = models.load_manifest().get(setup.name)
    if spec is None or spec.ladder is None:
        return []
    fetched = set(models.fetched())
    below = models.ladder_models(spec.labels_set)
    return [s.name for s in below if (s.ladder or 0) > spec.ladder and s.name in fetched]


def build(
    camera: CameraSettings, setup: loader.ModelSetup, own: Classifier, threads: int
) -> Ladder:
    """Plan, load and time each rung below the camera's own model (`own`, loaded already);
    keep those clearly cheaper than the one above."""
    setups, costs, loaded = [setup], [_cost(own)], [own]
    for name in names_for(camera, setup):
        rung = camera.model_copy(update={"model": name, "labels": None})
        candidate = loader.for_camera(rung, threads, setup.devices)
        if candidate.classes != setup.classes:
            raise ConfigError(f"ladder: {name} has other classes than {setup.name}")
        classifier = loader.load(candidate)
        cost = _cost(classifier)
        if cost > CHEAPER * costs[-1]:
            log.info("ladder of %s: %s left out (%.2f ms, not cheaper here)", camera.camera_id,
                     name, cost)  # fmt: skip
            continue
        setups.append(candidate)
        costs.append(cost)
        loaded.append(classifier)
    return Ladder(tuple(setups), tuple(costs), tuple(loaded))


def _cost(classifier: Classifier) -> float:
    spec = classifier.preprocess.spec
    frame = np.zeros((spec.height, spec.width, 3), np.uint8)
    return median_invoke_ms(classifier, [frame], TIMED)
