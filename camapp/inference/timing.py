"""The one way camapp times a model: the median invoke of a loaded classifier, after a
warm-up invoke (the first also sets up kernels). The ladder, `model compare` and the pair
comparison all use it."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import numpy as np

from camapp.inference.classifier import Classifier
from camapp.inference.preprocess import Roi


def median_invoke_ms(
    classifier: Classifier,
    frames: Sequence[np.ndarray],
    repeats: int,
    view: tuple[str, Roi | None] = ("center", None),
) -> float:
    """Median invoke time (ms) over `repeats` RGB frames cycled from `frames`, after one
    warm-up, each seen through `view` (crop, region of interest) as a camera would."""
    crop, roi = view
    images = itertools.islice(itertools.cycle(frames), repeats + 1)
    times = [classifier.classify(image, False, crop, roi).inference_ms for image in images]
    return statistics.median(times[1:])
