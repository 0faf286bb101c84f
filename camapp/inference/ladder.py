"""The model ladder: cheaper models with the same classes that a camera's governor may step
down to under a budget (`adapt = "model"` or `"auto"`), and back up from when there is room.
A detector camera's rungs are detectors that know every label it tracks (e.g. YOLOv8n, then
the SSD: both COCO): its tracker follows labels by name, so tracks and counts outlive a step.

The rungs come from the `ladder` setting, else from the manifest (models of the same label
set with a ladder rank below the camera's model), fetched ones only. What a rung costs is
measured here, on this device, at start, the rungs taking turns so that a passing load
weighs on all alike: a rung is kept only if it runs clearly faster than the one above it (on
x86 XNNPACK runs the published uint8 MobileNetV1 0.75 slower than the int8 MobileNetV2,
though it has fewer MACs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from camapp import models
from camapp.config.schema import CameraSettings
from camapp.errors import ConfigError
from camapp.inference import loader
from camapp.inference.detector import DetectorSpec
from camapp.inference.timing import interleaved_medians_ms
from camapp.tflite.graph import Kind
from camapp.tflite.modelfile import open_model

log = logging.getLogger(__name__)

CHEAPER = 0.8  # a rung must cost at most this fraction of the one above it
TIMED = 15  # invokes timed per rung (after one warm-up)


@dataclass(frozen=True)
class Ladder:
    setups: tuple[loader.Planned, ...]  # rung 0: the camera's own model
    costs: tuple[float, ...]  # ms per invoke, measured here
    classifiers: tuple[loader.Model, ...]  # loaded while measuring: the workers may keep them


def names_for(camera: CameraSettings, setup: loader.Planned) -> list[str]:
    """The models below the camera's own: the `ladder` setting, else the manifest's."""
    if camera.ladder:
        return list(camera.ladder)
    spec = models.load_manifest().get(setup.name)
    if spec is None or spec.ladder is None:
        return []
    fetched = set(models.fetched())
    below = models.ladder_models(spec.labels_set)
    return [s.name for s in below if (s.ladder or 0) > spec.ladder and s.name in fetched]


def build(camera: CameraSettings, setup: loader.Planned, own: loader.Model, threads: int) -> Ladder:
    """Plan, load and time each rung below the camera's own model (`own`, loaded already),
    all in one interleaved run; keep those clearly cheaper than the one above."""
    names = names_for(camera, setup)
    planned = [setup, *(_rung(camera, setup, name, threads) for name in names)]
    loaded = [own, *(loader.load_any(candidate) for candidate in planned[1:])]
    frames = [np.zeros((h, w, 3), np.uint8) for w, h in (model.size for model in loaded)]
    measured = interleaved_medians_ms(loaded, frames, TIMED)
    setups, costs, kept = [setup], [measured[0]], [own]
    for candidate, model, cost in zip(planned[1:], loaded[1:], measured[1:], strict=True):
        if cost > CHEAPER * costs[-1]:
            log.info("ladder of %s: %s left out (%.2f ms, not cheaper here)", camera.camera_id,
                     candidate.name, cost)  # fmt: skip
            continue
        setups.append(candidate)
        costs.append(cost)
        kept.append(model)
    return Ladder(tuple(setups), tuple(costs), tuple(kept))


class Unfit(ConfigError):
    """A model that cannot stand in for a camera's own; the message names it."""


def _rung(camera: CameraSettings, setup: loader.Planned, name: str, threads: int) -> loader.Planned:
    """A rung planned, or one line that names it: what is wrong with a model says which."""
    try:
        candidate = stand_in(camera, setup, name, threads)
    except Unfit as exc:
        raise ConfigError(f"ladder: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"ladder: {name}: {exc}") from None
    if isinstance(setup, loader.ModelSetup) and candidate.classes != setup.classes:
        raise ConfigError(f"ladder: {name} has other classes than {setup.name}")
    return candidate


def stand_in(
    camera: CameraSettings, own: loader.Planned, name: str, threads: int
) -> loader.Planned:
    """`name` planned to run in place of the camera's own model `own` (a ladder's rung, or a
    model a `set` switches to), as the camera's own model is. A detector camera's must be a
    detector that knows every tracked label (its results are tracked by name, so the class
    ids and their count may differ), with the camera's min_score, min_area and min_scores;
    a classifier camera's must be an image classifier (a rung must also give the same
    classes: `_rung`). Unfit: one line that names the model."""
    if not isinstance(own, DetectorSpec):
        rung = camera.model_copy(update={"model": name, "labels": None})
        return loader.for_camera(rung, threads, own.devices)
    file = open_model(models.resolve_model(name))
    shown = models.display_name(file.path)
    where = f"camera {camera.camera_id}"
    if file.kind != Kind.DETECTOR:
        what = f"an {file.why}" if file.kind == Kind.CLASSIFIER else f"no detector: {file.why}"
        raise Unfit(f"{shown} is {what}; {where} detects objects")
    # Its labels are its own (the camera's label file is its own model's).
    candidate = loader.camera_detector(camera.model_copy(update={"labels": None}), file, threads)
    missing = [label for label in camera.track if label not in candidate.names]
    if missing:
        raise Unfit(f"{shown} has no class {missing[0]!r}, which {where} tracks")
    return candidate
