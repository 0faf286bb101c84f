"""The AI Camera's backend hook: its network runs on the sensor, and lives with the camera in
capture/imx500.py (the AI Camera's one home).

Frames from the `imx500` source bring the network's scores (`Frame.scores`) and the workers
only rank them (`Classifier.rank`). Loading this backend opens the network in the owner's
`Devices`, which hands its firmware (`.rpk`) to the sensor, as picamera2 requires before the
camera is opened: the app loads models before it opens sources. Chosen by
`backend = "imx500"`, or by itself for a `.rpk` model; the labels come from the network's
intrinsics unless a labels file is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from camapp.capture.imx500 import network
from camapp.devices import Devices
from camapp.errors import ConfigError
from camapp.inference.backend import BackendSettings, InputSpec, OutputSpec, register


@register("imx500")
class Imx500Backend:
    def __init__(self, model_path: Path, settings: BackendSettings, devices: Devices) -> None:
        net = network(devices, model_path)
        width, height = net.input_size
        self.input = InputSpec(height, width, np.dtype(np.uint8))  # the sensor's, for the lores
        self.output = OutputSpec(classes=0)  # (1000,) or (1001,): each frame says
        self.labels = net.labels
        self._none = np.zeros((1, height, width, 3), np.uint8)
        self.input_tensor = self.output_tensor = lambda: self._none

    def invoke(self) -> None:
        """Only a frame without scores gets here: it came from another source."""
        raise ConfigError("the imx500 backend classifies on the AI Camera: use --source imx500")
