"""The Coral Edge TPU: LiteRT with the `edgetpu` delegate, for models compiled for it.

Chosen by `backend = "edgetpu"`, or by itself for a manifest model whose entry says
`delegate = "edgetpu"`. A missing runtime library or device is a one-line configuration error.
"""

from __future__ import annotations

from pathlib import Path

from camapp.devices import Devices
from camapp.inference.backend import BackendSettings, register
from camapp.inference.backends.litert import LiteRtBackend, LiteRtSettings


@register("edgetpu", tflite=True)
def edgetpu_backend(model_path: Path, settings: BackendSettings, devices: Devices) -> LiteRtBackend:
    """libedgetpu shares the Coral between interpreters itself: nothing to hold in `devices`."""
    edgetpu = LiteRtSettings(threads=settings.threads, delegate="edgetpu")
    return LiteRtBackend(model_path, edgetpu, devices)
