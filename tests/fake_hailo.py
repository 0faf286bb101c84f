"""A stand-in for picamera2's Hailo helper (`picamera2.devices.Hailo`), faithful at the boundary
camapp touches, as picamera2 (devices/hailo/hailo.py) has it:

- `Hailo(hef_path)` loads a network on the one device of the process (picamera2 shares one
  VDevice); a missing device, a device another process holds, or a bad file raise HailoRT's
  exceptions (their status names as HailoRT prints them; the exact text is not verified here).
- `describe()` gives ([(name, shape, format type)], [...]) for inputs and outputs;
  `get_input_shape()` the input's (height, width, channels).
- `run(frame)` takes one H x W x 3 uint8 frame, C-contiguous (HailoRT's buffer rule), and
  returns the output as float32, dequantized. The network it stands for is MobileNetV2: the
  shared uint8 TFLite model runs here on exactly the frame camapp handed over, so a wrong
  size, channel order or normalisation shows in the answer.

It counts devices opened and closed, and calls in flight at once (the device takes one).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.conftest import SHARED_MODELS

NETWORK = SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite"


class HailoRTException(Exception):
    """hailo_platform's base exception."""


class FormatType:
    """hailo_platform.FormatType's members, as `describe()` reports them."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"FormatType.{self.name}"


class HailoRig:
    def __init__(self, outputs: list[tuple[int, ...]] | None = None) -> None:
        self.present = True
        self.in_use = False  # another process holds the device
        self.input_shape = (224, 224, 3)
        self.outputs = outputs or [(1001,)]
        self.opened = 0
        self.closed = 0
        self.runs = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.frames: list[tuple[tuple[int, ...], np.dtype]] = []
        self._lock = threading.Lock()
        self._interpreter: Any = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        rig = self

        class BoundHailo(Hailo):
            def __init__(self, hef_path: str, batch_size: int | None = None,
                         output_type: str = "FLOAT32") -> None:  # fmt: skip
                super().__init__(rig, hef_path, batch_size, output_type)

        module = ModuleType("picamera2")
        devices = ModuleType("picamera2.devices")
        devices.Hailo = BoundHailo  # type: ignore[attr-defined]
        module.devices = devices  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "picamera2", module)
        monkeypatch.setitem(sys.modules, "picamera2.devices", devices)

    def infer(self, frame: np.ndarray) -> np.ndarray:
        """MobileNetV2 on the frame, dequantized to float as HailoRT's FLOAT32 output is."""
        from ai_edge_litert.interpreter import Interpreter

        with self._lock:
            if self._interpreter is None:
                self._interpreter = Interpreter(model_path=str(NETWORK))
                self._interpreter.allocate_tensors()
            interp = self._interpreter
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            interp.set_tensor(inp["index"], frame[None])
            interp.invoke()
            scale, zero = out["quantization"]
            return (interp.get_tensor(out["index"])[0].astype(np.float32) - zero) * scale


class Hailo:
    def __init__(self, rig: HailoRig, hef_path: str, batch_size: int | None, output_type: str):
        if not Path(hef_path).is_file():
            raise HailoRTException(
                f"Failed to open HEF file {hef_path}: HAILO_OPEN_FILE_FAILURE(13)"
            )
        if not rig.present:
            raise HailoRTException("Failed to create vdevice: HAILO_OUT_OF_PHYSICAL_DEVICES(74)")
        if rig.in_use:
            raise HailoRTException("Failed to create vdevice: HAILO_DEVICE_IN_USE(62)")
        self.rig = rig
        self.batch_size = batch_size
        self.output_type = output_type
        rig.opened += 1

    def __enter__(self) -> Hailo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> tuple[list, list]:
        inputs = [("mobilenet_v2/input_layer1", self.rig.input_shape, FormatType("UINT8"))]
        outputs = [
            (f"mobilenet_v2/fc{i}", shape, FormatType(self.output_type))
            for i, shape in enumerate(self.rig.outputs, 1)
        ]
        return inputs, outputs

    def get_input_shape(self) -> tuple[int, ...]:
        return self.rig.input_shape

    def run(self, input_data: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        rig = self.rig
        with rig._lock:
            rig.in_flight += 1
            rig.most_in_flight = max(rig.most_in_flight, rig.in_flight)
        try:
            if input_data.shape != rig.input_shape or input_data.dtype != np.uint8:
                raise HailoRTException(
                    f"Input buffer of shape {input_data.shape} {input_data.dtype}: "
                    "HAILO_INVALID_ARGUMENT(2)"
                )
            if not input_data.flags.c_contiguous:
                raise HailoRTException(
                    "Input buffer is not C-contiguous: HAILO_INVALID_ARGUMENT(2)"
                )
            rig.frames.append((input_data.shape, input_data.dtype))
            rig.runs += 1
            time.sleep(0.001)  # the device's time: long enough for overlapping calls to show
            scores = rig.infer(input_data)
            if len(rig.outputs) > 1:
                return {f"mobilenet_v2/fc{i}": scores for i in range(1, len(rig.outputs) + 1)}
            return scores.reshape(rig.outputs[0])
        finally:
            with rig._lock:
                rig.in_flight -= 1

    def close(self) -> None:
        self.rig.closed += 1
