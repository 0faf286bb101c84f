"""Two classifiers side by side: do they pick the same class, how big and how fast are they.

Each model is loaded as a camera loads it (`loader`, the `Classifier` with the app's own
preprocessing for its input type), so a float model and its quantized copy see the same
pixels. Speed is the median invoke time at the same thread count (`inference.timing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camapp.errors import ConfigError
from camapp.inference import loader
from camapp.inference.timing import median_invoke_ms


@dataclass(frozen=True, slots=True)
class Comparison:
    agreement: float  # share of images given the same top-1 class
    size_ratio: float  # bytes of model a / bytes of model b
    speedup: float  # median invoke time of a / that of b: above 1, b is faster
    median_ms: tuple[float, float]  # (a, b)


@dataclass(frozen=True, slots=True)
class _Run:
    classes: list[int]  # top-1 class of each image
    scores: list[float]  # its score, dequantized
    median_ms: float  # median invoke time, 0 when not timed


def _run(model: Path, images: Sequence[np.ndarray], threads: int, repeats: int = 0) -> _Run:
    """Top-1 class and score of each RGB image, and the median invoke over `repeats` passes
    (0: not timed)."""
    classifier = loader.load_file(model, top_k=1, threads=threads, numbered=True)
    tops = [classifier.classify(image).top_k[0] for image in images]
    timed = median_invoke_ms(classifier, images, len(images) * repeats) if repeats else 0.0
    return _Run([t.class_id for t in tops], [t.score for t in tops], timed)


def _agreement(a: _Run, b: _Run, min_score: float) -> float:
    """Share of the images `a` scores at least `min_score` on that `b` puts in the same class."""
    counted = [
        (x, y) for x, y, s in zip(a.classes, b.classes, a.scores, strict=True) if s >= min_score
    ]
    if not counted:
        raise ConfigError(f"no image reaches a top score of {min_score} on the first model")
    return sum(x == y for x, y in counted) / len(counted)


def _check_images(images: Sequence[np.ndarray]) -> None:
    if not images:
        raise ConfigError("no images to compare the models on")


def agreement(
    model_a: Path,
    model_b: Path,
    images: Sequence[np.ndarray],
    threads: int = 1,
    min_score: float = 0.0,
) -> float:
    """Share of RGB images on which both models give the same top-1 class, counting only
    those `model_a` gives a top score of at least `min_score` (the app's state threshold
    ignores the rest)."""
    _check_images(images)
    runs = _run(model_a, images, threads), _run(model_b, images, threads)
    return _agreement(*runs, min_score)


def compare(
    model_a: Path,
    model_b: Path,
    images: Sequence[np.ndarray],
    threads: int = 1,
    repeats: int = 3,
) -> Comparison:
    """Agreement, size ratio and speed-up of `model_b` over `model_a` on RGB images."""
    _check_images(images)
    if repeats < 1 or len(images) * repeats < 2:
        raise ConfigError("timing needs at least two invokes: more images or repeats")
    run_a, run_b = _run(model_a, images, threads, repeats), _run(model_b, images, threads, repeats)
    median_a, median_b = run_a.median_ms, run_b.median_ms
    return Comparison(
        agreement=_agreement(run_a, run_b, 0.0),
        size_ratio=Path(model_a).stat().st_size / Path(model_b).stat().st_size,
        speedup=median_a / median_b,
        median_ms=(median_a, median_b),
    )
