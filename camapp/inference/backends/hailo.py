"""The Hailo-8L/8 of the Raspberry Pi AI Kit and AI HAT+, through picamera2's helper.

`picamera2.devices.Hailo` loads a compiled network (`.hef`); `run(frame)` takes one
H x W x 3 uint8 frame (the normalisation is compiled into the network) and returns its output
as float32 (dequantized by HailoRT). Chosen by `backend = "hailo"`, or by itself for a `.hef`
model, and fed from any source at the network's input size by the usual preprocessor.

One device for the app: every worker of every camera uses one Hailo object per network, one
frame at a time, held in the app's `Devices` (camapp/devices.py) and released when it stops.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camapp.devices import Devices
from camapp.errors import ConfigError
from camapp.inference.backend import BackendSettings, InputSpec, OutputSpec, register

INSTALL_HINT = "picamera2's Hailo support is missing: sudo apt install hailo-all python3-picamera2"
DEVICE_HINT = (
    "is the AI Kit/HAT+ fitted and no other process using it? "
    "check with: hailortcli fw-control identify"
)


@dataclass
class Device:
    """One loaded network on the Hailo, shared; `lock` lets one frame through at a time."""

    hailo: Any  # picamera2.devices.Hailo
    lock: threading.Lock = field(default_factory=threading.Lock)


def device(devices: Devices, path: Path) -> Device:
    """The network at `path` on the Hailo, loaded once for the owner of `devices`, and
    released when it closes them (so the next process, or a restart, can open it)."""
    path = Path(path).resolve()
    return devices.get(("hailo", path), lambda: Device(_open(path)), lambda d: d.hailo.close())


def _open(path: Path) -> Any:
    if path.suffix.lower() != ".hef":
        raise ConfigError(
            f"the hailo backend takes a compiled Hailo network (.hef), not {path.name}"
        )
    try:
        from picamera2.devices import Hailo
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    try:
        return Hailo(str(path))
    except Exception as exc:  # HailoRT's exceptions, or a bad file
        line = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"Hailo: cannot load {path.name}: {line} ({DEVICE_HINT})") from None


def _format(kind: Any) -> str:
    return str(getattr(kind, "name", kind)).rsplit(".", 1)[-1]  # FormatType.UINT8 -> UINT8


@register("hailo")
class HailoBackend:
    """A worker's view of the shared device: its own input and output buffers."""

    def __init__(self, model_path: Path, settings: BackendSettings, devices: Devices) -> None:
        self._device = device(devices, model_path)
        inputs, outputs = self._device.hailo.describe()
        shape, kind = tuple(inputs[0][1]), _format(inputs[0][2])
        if len(inputs) != 1 or len(shape) != 3 or shape[2] != 3 or kind != "UINT8":
            raise ConfigError(
                f"model {model_path} is not an image classifier: input {shape} {kind}"
            )
        classes = math.prod(outputs[0][1])
        if len(outputs) != 1 or classes < 2:
            raise ConfigError(f"model {model_path} is not an image classifier: {len(outputs)} "
                              f"outputs, the first {tuple(outputs[0][1])}")  # fmt: skip
        self.input = InputSpec(shape[0], shape[1], np.dtype(np.uint8))  # raw pixels
        self.output = OutputSpec(classes)  # float: dequantized by HailoRT
        self._in = np.zeros((1, *shape), np.uint8)
        self._out = np.zeros((1, classes), np.float32)
        self.input_tensor = lambda: self._in
        self.output_tensor = lambda: self._out

    def invoke(self) -> None:
        try:
            with self._device.lock:
                result = self._device.hailo.run(self._in[0])
            self._out[0] = np.asarray(result, np.float32).reshape(-1)
        except Exception as exc:  # the classifier reports RuntimeErrors as failed inference
            raise RuntimeError(" ".join(str(exc).split())[:200] or type(exc).__name__) from None
