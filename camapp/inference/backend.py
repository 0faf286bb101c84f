"""The inference backend contract and the registry that picks one by name.

A backend loads a model and runs it on one preprocessed frame; everything else (preprocessing,
top-k, labels, the worker pool) is the same for every backend. Adding one is one new file in
`inference/backends/` that calls `register()`, plus its import in `backends/__init__.py`
(the pattern of Frigate's detector plugins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from camapp.errors import ConfigError

DEFAULT_MEAN = 127.5  # MobileNet's normalisation: (pixel - 127.5) / 127.5 lies in [-1, 1]
DEFAULT_STD = 127.5


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What the model takes: the preprocessor writes exactly this, in place."""

    height: int
    width: int
    dtype: np.dtype
    scale: float = 0.0  # quantization of the input tensor; 0: not quantized
    zero_point: int = 0
    # The model sees (pixel - mean) / std: one value for every channel, or one per channel.
    mean: tuple[float, ...] = (DEFAULT_MEAN,)
    std: tuple[float, ...] = (DEFAULT_STD,)
    layout: str = "NHWC"


@dataclass(frozen=True, slots=True)
class OutputSpec:
    classes: int  # 0: each frame brings its own scores (the AI Camera; Classifier.rank)
    scale: float = 0.0  # 0: scores are not quantized
    zero_point: int = 0


@dataclass(frozen=True, slots=True)
class BackendOptions:
    threads: int = 1  # interpreter threads
    delegate: str | None = None  # a TFLite delegate library (LiteRT backends)


class Backend(Protocol):
    """One loaded model, used by one worker thread at a time.

    The three calls are attributes rather than wrapper methods so that a backend can hand out
    its runtime's own functions: a frame then costs no Python call beyond the runtime's.
    """

    input: InputSpec
    output: OutputSpec
    input_tensor: Callable[[], np.ndarray]  # (1, H, W, C) view the preprocessor writes into
    invoke: Callable[[], None]  # runs the model; RuntimeError on failure
    output_tensor: Callable[[], np.ndarray]  # (1, classes) view of the raw scores


Factory = Callable[[Path, BackendOptions], Backend]
_REGISTRY: dict[str, Factory] = {}
_TFLITE: set[str] = set()  # backends that read .tflite files, which camapp checks first


def register(name: str, tflite: bool = False) -> Callable[[Factory], Factory]:
    """Class decorator: make a backend selectable as `backend = "<name>"`. With `tflite`, the
    model file is checked as a TFLite image classifier before the backend loads it."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        if tflite:
            _TFLITE.add(name)
        return factory

    return add


def reads_tflite(name: str) -> bool:
    _load_builtin()
    return name in _TFLITE


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create(name: str, model_path: Path, options: BackendOptions) -> Backend:
    """Load `model_path` with the backend `name`; an unknown name is a configuration error."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend '{name[:100]}' (known: {', '.join(names())})")
    return _REGISTRY[name](model_path, options)


def _load_builtin() -> None:
    """The built-in backends register on import; optional device libraries load later, lazily."""
    import camapp.inference.backends  # noqa: F401
