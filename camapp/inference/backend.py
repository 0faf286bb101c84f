"""The inference backend contract and the registry that picks one by name.

A backend loads a model and runs it on one preprocessed frame; everything else (preprocessing,
top-k, labels, the worker pool) is the same for every backend. Adding one is one new file in
`inference/backends/` that calls `register()` with its own settings model: the package is
discovered with pkgutil, so no list names the files (the pattern of Frigate's detector
plugins). A backend's settings refuse what it does not declare (`extra="forbid"`), so a
setting meant for another backend is a one-line error, not silently ignored.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from camapp.config.load import check
from camapp.config.schema import Settings, setting
from camapp.devices import Devices
from camapp.errors import ConfigError, echo

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


class BackendSettings(Settings):
    """What every backend is given; a backend with settings of its own subclasses it. Strict
    and closed (config/schema.Settings): a key the backend does not declare is refused."""

    threads: int = setting(1, "CPU threads the worker's backend may use", ge=1, le=64)


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


# (model file, the plugin's own settings, the devices the set-up's owner holds open)
Factory = Callable[[Path, Any, Devices], Backend]


@dataclass(frozen=True, slots=True)
class Plugin:
    factory: Factory
    settings: type[BackendSettings]
    tflite: bool  # the model file is checked as a TFLite image classifier before it loads


_REGISTRY: dict[str, Plugin] = {}


def register(
    name: str, settings: type[BackendSettings] = BackendSettings, tflite: bool = False
) -> Callable[[Factory], Factory]:
    """Class decorator: make a backend selectable as `backend = "<name>"`, configured by
    `settings` (its own model; the common one when it has none of its own)."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[name] = Plugin(factory, settings, tflite)
        return factory

    return add


def reads_tflite(name: str) -> bool:
    return _plugin(name).tflite


def names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def configure(name: str, given: Mapping[str, Any]) -> BackendSettings:
    """The backend's own settings from what the camera gave, or one line saying what is wrong
    (an unknown backend, a setting it does not take, a value out of bounds)."""
    plugin = _plugin(name)
    try:
        return check(plugin.settings, given)
    except ConfigError as exc:
        raise ConfigError(f"backend {name}: {exc}") from None


def create(name: str, model_path: Path, settings: BackendSettings, devices: Devices) -> Backend:
    """Load `model_path` with the backend `name`, given settings `configure` made for it; a
    backend that runs on a device opens it in `devices`, shared with whoever else needs it."""
    return _plugin(name).factory(model_path, settings, devices)


def _plugin(name: str) -> Plugin:
    """The registered backend `name`; an unknown name is a configuration error."""
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend {echo(name)} (known: {', '.join(names())})")
    return _REGISTRY[name]


@functools.cache
def _discover() -> None:
    """Import every module of `camapp.inference.backends`: each registers itself. Device
    libraries are imported only when a backend loads, so this costs no optional import."""
    from camapp.inference import backends

    for module in pkgutil.iter_modules(backends.__path__, f"{backends.__name__}."):
        importlib.import_module(module.name)
