"""The Raspberry Pi AI Camera (Sony IMX500): the sensor runs the network, and each frame comes
with its scores.

This module is the AI Camera's one home: the network on the sensor (`Network`, opened by
`network()`) and the source whose frames carry its scores. Two hooks reach it: the `imx500`
backend (inference/backends/imx500.py) calls `network()` when the app loads its models, which
is before any source opens, as picamera2 requires (`picamera2.devices.IMX500` hands the
firmware, `.rpk`, to the sensor before `Picamera2(imx500.camera_num)` is created); the
`imx500` source (capture/__init__.open_source) is given that same `Network`. It is held in
the app's `Devices` (camapp/devices.py), not in a registry of its own.

Per frame, `get_outputs()` gives the dequantized scores (softmax applied here when the
network's intrinsics ask for it) and `get_kpi_info()` the time the sensor's DNN took, which
becomes the frame's `inference_ms`. The workers only rank the
scores (Classifier.rank), so the CPU's share is the lores frame's conversion and the result.

The `crop` setting maps to the sensor's inference region: `center` crops the full sensor to
the network's aspect (`set_auto_aspect_ratio()`, which calls `set_inference_roi_abs()`),
`stretch` keeps the full sensor (picamera2's default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camapp.capture.base import Frame
from camapp.capture.picamera import PiCameraSource
from camapp.config.schema import PiCameraSettings
from camapp.devices import Devices
from camapp.errors import ConfigError, SourceError

INSTALL_HINT = (
    "picamera2's AI Camera support is missing: sudo apt install imx500-all python3-picamera2"
)
# picamera2 0.3.22-0.3.34 open the firmware progress files in debugfs unguarded in IMX500(),
# so as a user who cannot read debugfs (the service's User=camapp) it fails; 0.3.35 made them
# optional and added IMX500.FwProgressType with that change: the feature camapp checks for.
UPGRADE_HINT = (
    "this picamera2 is older than 0.3.35, whose AI Camera support fails as a user without "
    "access to /sys/kernel/debug (the service's User=camapp): upgrade it: "
    "sudo apt update && sudo apt install --only-upgrade python3-picamera2"
)
DEVICE_HINT = (
    "is the AI Camera connected and not used by another process? "
    "check with: rpicam-hello --list-cameras"
)
# Seconds of frames without scores before the network counts as failed: the first upload of
# a network's firmware to the sensor takes a while; frames keep coming meanwhile.
NETWORK_TIMEOUT = 120.0


@dataclass
class Network:
    """One network handed to the sensor, and what its intrinsics say."""

    path: Path
    imx500: Any  # picamera2.devices.IMX500
    softmax: bool
    labels: list[str] | None
    input_size: tuple[int, int]  # (width, height) the sensor feeds the network
    started: bool = False  # its firmware upload has been shown once


def network(devices: Devices, path: Path) -> Network:
    """The network at `path` on the AI Camera, handed over once for the owner of `devices`;
    the sensor runs one network (picamera2 finds the first IMX500). picamera2's IMX500 has no
    close(): it releases the sensor when dropped, as the owner's close() does."""
    path = Path(path).resolve()
    net = devices.get("imx500", lambda: _open(path))
    if net.path != path:
        raise ConfigError(f"the AI Camera already runs {net.path.name}: one network a process")
    return net


def _open(path: Path) -> Network:
    if path.suffix.lower() != ".rpk":
        raise ConfigError(f"the imx500 backend takes an IMX500 network (.rpk), not {path.name}")
    try:
        from picamera2.devices import IMX500
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    if not hasattr(IMX500, "FwProgressType"):
        raise ConfigError(UPGRADE_HINT)
    try:
        imx500 = IMX500(str(path))
    except Exception as exc:  # picamera2 raises RuntimeError, the ioctls OSError
        raise ConfigError(f"AI Camera: {_line(exc)} ({DEVICE_HINT})") from None
    intrinsics = imx500.network_intrinsics
    task = intrinsics.task if intrinsics is not None else None
    if task not in (None, "classification"):
        raise ConfigError(f"{path.name} is a {_line(task)} network, not a classifier")
    softmax = bool(intrinsics is not None and intrinsics.softmax)
    labels = list(intrinsics.labels or []) if intrinsics is not None else None
    width, height = imx500.get_input_size()
    return Network(path, imx500, softmax, labels or None, (int(width), int(height)))


def _line(value: object) -> str:
    return " ".join(str(value).split())[:200]


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


class Imx500Source(PiCameraSource):
    """The AI Camera as a Pi camera whose frames carry the network's scores."""

    def __init__(
        self, network: Network, settings: PiCameraSettings | None = None, crop: str = "center"
    ) -> None:
        self.network = network
        self._imx500 = self.network.imx500
        self._crop = crop
        self._waiting_since: float | None = None
        super().__init__(self._imx500.camera_num, settings, max(self.network.input_size))
        self.name = "imx500"

    def _configure_and_start(self, lores_size: tuple[int, int]) -> None:
        if not self.network.started:  # the firmware uploads as the camera first starts
            self._imx500.show_network_fw_progress_bar()
            self.network.started = True
        super()._configure_and_start(lores_size)
        if self._crop == "center":
            self._imx500.set_auto_aspect_ratio()

    def _frame(self, request: Any) -> Frame | None:
        metadata = request.get_metadata()
        outputs = self._imx500.get_outputs(metadata)
        if outputs is None:  # the network is not running yet: nothing to classify
            self._still_loading()
            return None
        self._waiting_since = None
        frame = super()._frame(request)
        assert frame is not None
        scores = np.asarray(outputs[0], np.float32).reshape(-1)
        frame.scores = softmax(scores) if self.network.softmax else scores
        kpi = self._imx500.get_kpi_info(metadata)
        frame.inference_ms = float(kpi[0]) if kpi else 0.0
        return frame

    def _still_loading(self) -> None:
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since > NETWORK_TIMEOUT:
            raise SourceError(
                f"{self.name}: no network output for {NETWORK_TIMEOUT:g}s "
                "(did the firmware upload fail? see dmesg)"
            )
