"""A third inference backend in one file, as a plugin would be: it registers itself and
classifies a frame by its dominant colour channel. No model file is read; the pipeline
around it (preprocessing into its input, top-k, labels, sinks) is camapp's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from camapp.devices import Devices
from camapp.inference.backend import BackendSettings, InputSpec, OutputSpec, register


@register("colour")
class ColourBackend:
    def __init__(self, model_path: Path, settings: BackendSettings, devices: Devices) -> None:
        # Raw pixels in: scale 1/127.5, zero point 127 make the preprocessor write them as is.
        self.input = InputSpec(8, 8, np.dtype(np.uint8), 1 / 127.5, 127)
        self.output = OutputSpec(classes=3, scale=1 / 255, zero_point=0)
        self._in = np.zeros((1, 8, 8, 3), np.uint8)
        self._out = np.zeros((1, 3), np.uint8)
        self.input_tensor = lambda: self._in
        self.output_tensor = lambda: self._out

    def invoke(self) -> None:
        self._out[0] = self._in[0].mean(axis=(0, 1)).astype(np.uint8)
