"""The one way camapp times a model: the median invoke of a loaded classifier or detector,
after a warm-up invoke (the first also sets up kernels). The ladder, `model compare` and the
pair comparison all use it."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import numpy as np

from camapp.inference.classifier import Classifier
from camapp.inference.detector import Detector
from camapp.inference.preprocess import Roi

View = tuple[str, Roi | None]  # crop, region of interest


def median_invoke_ms(
    model: Classifier | Detector,
    frames: Sequence[np.ndarray],
    repeats: int,
    view: View = ("center", None),
) -> float:
    """Median invoke time (ms) over `repeats` RGB frames cycled from `frames`, after one
    warm-up, each seen through `view` as a camera would (a detector sees the region whole)."""
    images = itertools.islice(itertools.cycle(frames), repeats + 1)
    return statistics.median([invoke_ms(model, image, view) for image in images][1:])


def interleaved_medians_ms(
    models: Sequence[Classifier | Detector], frames: Sequence[np.ndarray], repeats: int
) -> list[float]:
    """The median invoke time (ms) of each model on its frame, the models taking turns
    (after one warm-up each): a load that comes and goes while they are timed (another
    process, on a shared machine) weighs on all of them alike, so their ratios hold."""
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats + 1):
        for model, frame, spent in zip(models, frames, times, strict=True):
            spent.append(invoke_ms(model, frame, ("center", None)))
    return [statistics.median(spent[1:]) for spent in times]


def invoke_ms(model: Classifier | Detector, image: np.ndarray, view: View) -> float:
    """One classification's (or detection's) invoke time, in ms."""
    crop, roi = view
    if isinstance(model, Detector):
        return model.detect(image, False, roi).inference_ms
    return model.classify(image, False, crop, roi).inference_ms
