"""A stand-in for the AI Camera (`picamera2.devices.IMX500`) on top of tests/fake_picamera2.py.

Faithful at the boundary camapp touches, as picamera2 (devices/imx500/imx500.py) has it:
- `IMX500(network_file)` finds the sensor or raises `RuntimeError('IMX500: Requested camera
  dev-node not found')`, refuses a missing firmware file, and fails the firmware ioctl with
  EBUSY when the sensor is busy; it records when the firmware was handed over, so a test can
  check it came before `Picamera2(imx500.camera_num)`.
- each request's metadata carries what libcamera's IMX500 pipeline puts there once the network
  runs (not for the first `loading_frames` frames): `CnnOutputTensor` (flat float32 values),
  `CnnOutputTensorInfo` (the packed `CnnOutputTensorInfoExported` struct) and `CnnKpiInfo`
  ([DNN µs, DSP µs]); `get_outputs()` and `get_kpi_info()` decode them exactly as picamera2 does.
- `network_intrinsics` (task, softmax, labels), `get_input_size()`, the progress bar, and the
  inference region (`set_inference_roi_abs`, `set_auto_aspect_ratio`) on the 4056x3040 sensor.
- picamera2's release: from 0.3.35 `IMX500.FwProgressType` exists and the progress bar's
  debugfs files are optional; `old_picamera2` (0.3.22-0.3.34) opens
  `/sys/kernel/debug/imx500-fw:*` unguarded in `IMX500()`, so as a user who cannot read
  debugfs (`debugfs=False`, e.g. the service's `User=camapp`) it raises `PermissionError`.

Use: `rig = Imx500Rig(...)`, then `rig.install(monkeypatch)`.
"""

from __future__ import annotations

import ctypes
import enum
import os
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests import fake_picamera2
from tests.fake_picamera2 import Rig

MAX_NUM_TENSORS = 16
MAX_NUM_DIMENSIONS = 16
SENSOR = (4056, 3040)


class OutputTensorInfo(ctypes.LittleEndianStructure):  # libcamera's struct OutputTensorInfo
    _fields_ = [  # ctypes' own spelling
        ("tensor_data_num", ctypes.c_uint32),
        ("num_dimensions", ctypes.c_uint32),
        ("size", ctypes.c_uint16 * MAX_NUM_DIMENSIONS),
    ]


class CnnOutputTensorInfoExported(ctypes.LittleEndianStructure):
    _fields_ = [
        ("network_name", ctypes.c_char * 64),
        ("num_tensors", ctypes.c_uint32),
        ("info", OutputTensorInfo * MAX_NUM_TENSORS),
        ("frameCount", ctypes.c_uint8),
    ]


def tensor_info(shape: tuple[int, ...]) -> bytes:
    info = CnnOutputTensorInfoExported()
    info.network_name = b"mobilenet_v2"
    info.num_tensors = 1
    info.info[0].tensor_data_num = int(np.prod(shape))
    info.info[0].num_dimensions = len(shape)
    for i, size in enumerate(shape):
        info.info[0].size[i] = size
    return bytes(info)


class Imx500Rig(Rig):
    """The AI Camera's world: its network's outputs, what fails, and what happened in order."""

    def __init__(
        self,
        classes: int = 1001,
        top: int = 90,  # the class the network sees (90: "lorikeet" with the background label)
        softmax: bool = False,  # intrinsics ask camapp to apply softmax (outputs are logits)
        labels: list[str] | None = None,  # intrinsics' labels
        task: str | None = "classification",
        intrinsics: bool = True,
        loading_frames: int = 2,
        kpi_us: tuple[int, int] = (6250, 1500),
        input_size: tuple[int, int] = (224, 224),
        old_picamera2: bool = False,
        debugfs: bool = True,
    ) -> None:
        super().__init__()
        self.old_picamera2, self.debugfs = old_picamera2, debugfs
        self.classes, self.top, self.softmax = classes, top, softmax
        self.labels, self.task, self.intrinsics = labels, task, intrinsics
        self.loading_frames = loading_frames
        self.kpi_us = kpi_us
        self.input_size = input_size
        self.present = True  # a sensor is connected
        self.busy = False  # another process holds the sensor: the firmware ioctl fails
        self.events: list[str] = []  # "firmware", "open", "progress", "start", "roi"
        self.roi: tuple[int, int, int, int] = (0, 0, *SENSOR)
        self.frames = 0

    def output(self) -> np.ndarray:
        """What the network outputs for one frame: logits, or probabilities if it has softmax."""
        logits = np.linspace(-2.0, 2.0, self.classes, dtype=np.float32)
        logits[self.top] = 9.0
        if self.softmax:
            return logits
        exp = np.exp(logits - logits.max())
        return (exp / exp.sum()).astype(np.float32)

    def metadata(self, camera: Any) -> dict[str, Any]:
        self.frames += 1
        if self.frames <= self.loading_frames or not camera.started:
            return {}
        return {
            "CnnOutputTensor": self.output().tolist(),  # libcamera hands over a float list
            "CnnOutputTensorInfo": tensor_info((self.classes,)),
            "CnnKpiInfo": list(self.kpi_us),
        }

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make `import picamera2` and `from picamera2.devices import IMX500` find the rig."""
        module = self.module()
        rig = self

        class BoundPicamera2(module.Picamera2):  # type: ignore[name-defined,misc]
            def __init__(self, camera_num: int = 0) -> None:
                super().__init__(camera_num)
                rig.events.append("open")

            def start(self) -> None:
                super().start()
                rig.events.append("start")

            def capture_request(self, *args: Any, **kwargs: Any) -> fake_picamera2.Request:
                request = super().capture_request(*args, **kwargs)
                extra = rig.metadata(self)
                plain = request.get_metadata
                request.get_metadata = lambda: plain() | extra  # type: ignore[method-assign]
                return request

        class BoundIMX500(OldIMX500 if self.old_picamera2 else IMX500):  # type: ignore[misc]
            def __init__(self, network_file: str, camera_id: str = "") -> None:
                super().__init__(rig, network_file, camera_id)

        module.Picamera2 = BoundPicamera2  # type: ignore[attr-defined]
        devices = ModuleType("picamera2.devices")
        devices.IMX500 = BoundIMX500  # type: ignore[attr-defined]
        module.devices = devices  # type: ignore[attr-defined]
        monkeypatch.setitem(__import__("sys").modules, "picamera2", module)
        monkeypatch.setitem(__import__("sys").modules, "picamera2.devices", devices)


class OldIMX500:
    """picamera2 0.3.22-0.3.34's IMX500: no FwProgressType, and debugfs opened unguarded."""

    debugfs_optional = False

    def __init__(self, rig: Imx500Rig, network_file: str, camera_id: str = "") -> None:
        if not rig.present:
            raise RuntimeError("IMX500: Requested camera dev-node not found")
        if not (self.debugfs_optional or rig.debugfs):
            raise PermissionError(
                13, "Permission denied", "/sys/kernel/debug/imx500-fw:10-001a/fw_progress"
            )
        if not os.path.isfile(network_file):
            raise RuntimeError(f"Firmware file {network_file} does not exist.")
        if rig.busy:
            raise RuntimeError(
                f"IMX500: Unable to set network firmware {network_file}: "
                "[Errno 16] Device or resource busy"
            )
        self.rig = rig
        rig.events.append("firmware")
        self.camera_num = 0
        intrinsics = None
        if rig.intrinsics:
            intrinsics = SimpleNamespace(
                task=rig.task, softmax=rig.softmax or None, labels=rig.labels, inference_rate=30.0
            )
        self.network_intrinsics = intrinsics

    def get_input_size(self) -> tuple[int, int]:
        return self.rig.input_size

    def show_network_fw_progress_bar(self) -> None:
        self.rig.events.append("progress")

    def set_inference_roi_abs(self, roi: tuple[int, int, int, int]) -> None:
        self.rig.roi = tuple(roi)  # type: ignore[assignment]
        self.rig.events.append("roi")

    def set_auto_aspect_ratio(self) -> None:
        """The full sensor, cropped centrally to the input tensor's aspect."""
        (w, h), (sw, sh) = self.rig.input_size, SENSOR
        scale = min(sw / w, sh / h)
        cw, ch = int(w * scale), int(h * scale)
        self.set_inference_roi_abs(((sw - cw) // 2, (sh - ch) // 2, cw, ch))

    def get_outputs(self, metadata: dict, add_batch: bool = False) -> list[np.ndarray] | None:
        output_tensor = metadata.get("CnnOutputTensor")
        if not output_tensor:
            return None
        np_output = np.fromiter(output_tensor, dtype=np.float32)
        info = CnnOutputTensorInfoExported.from_buffer_copy(metadata["CnnOutputTensorInfo"])
        outputs, offset = [], 0
        for t in info.info[: info.num_tensors]:
            shape = list(t.size)[: t.num_dimensions]
            size = int(np.prod(shape))
            tensor = np_output[offset : offset + size].reshape(shape, order="F")
            outputs.append(np.expand_dims(tensor, 0) if add_batch else tensor)
            offset += size
        return outputs

    @staticmethod
    def get_kpi_info(metadata: dict) -> tuple[float, float] | None:
        kpi = metadata.get("CnnKpiInfo")
        if kpi is None:
            return None
        return kpi[0] / 1000, kpi[1] / 1000


class IMX500(OldIMX500):
    """picamera2 0.3.35's: the progress bar reads debugfs if it can, else shows nothing."""

    debugfs_optional = True

    class FwProgressType(enum.IntEnum):
        NONE = 0
        DIRECT = 1
        INDIRECT = 2
