"""Two classifiers side by side: do they pick the same class, how big and how fast are they.

Each model gets the app's own preprocessing for its input type, so a float model and its
quantized copy see the same pixels. Speed is the median invoke time at the same thread count.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camapp.errors import CamappError, ConfigError
from camapp.inference.backend import InputSpec
from camapp.inference.backends.litert import interpreter_api
from camapp.inference.preprocess import Preprocessor
from camapp.tflite import modelfile


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
    times_ms: list[float]  # every timed invoke


def _run(model: Path, images: Sequence[np.ndarray], threads: int, repeats: int) -> _Run:
    """Top-1 class and score of each RGB image, and invoke times over `repeats` passes."""
    try:
        interpreter = interpreter_api()[0](model_path=str(model), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot load model {model}: {modelfile.first_line(exc)}") from None
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3:
        raise ConfigError(f"model {model} is not an image classifier: input {shape}")
    preprocess = Preprocessor(
        InputSpec(shape[1], shape[2], np.dtype(inp["dtype"]), *inp["quantization"])
    )
    tensor = np.empty(shape, inp["dtype"])
    scale, zero_point = out["quantization"]
    classes: list[int] = []
    scores: list[float] = []
    times: list[float] = []
    for image in list(images) * repeats:
        preprocess(image, False, tensor[0])
        interpreter.set_tensor(inp["index"], tensor)
        start = time.perf_counter()
        try:
            interpreter.invoke()
        except RuntimeError as exc:
            raise CamappError(f"inference failed on {model}: {modelfile.first_line(exc)}") from None
        times.append((time.perf_counter() - start) * 1000)
        output = interpreter.get_tensor(out["index"])[0]
        best = int(output.argmax())  # a quantized output keeps the float order
        classes.append(best)
        scores.append((float(output[best]) - zero_point) * scale if scale else float(output[best]))
    n = len(images)
    return _Run(classes[:n], scores[:n], times[1:])  # the first invoke also sets up kernels


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
    runs = _run(model_a, images, threads, 1), _run(model_b, images, threads, 1)
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
    median_a, median_b = statistics.median(run_a.times_ms), statistics.median(run_b.times_ms)
    return Comparison(
        agreement=_agreement(run_a, run_b, 0.0),
        size_ratio=Path(model_a).stat().st_size / Path(model_b).stat().st_size,
        speedup=median_a / median_b,
        median_ms=(median_a, median_b),
    )
