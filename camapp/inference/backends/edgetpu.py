"""The Coral Edge TPU: LiteRT with the `edgetpu` delegate, for models compiled for it.

Chosen by `backend = "edgetpu"`, or by itself for a manifest model whose entry says
`delegate = "edgetpu"`. A missing runtime library or device is a one-line configuration error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from camapp.inference.backend import BackendOptions, register
from camapp.inference.backends.litert import LiteRtBackend


@register("edgetpu", tflite=True)
def edgetpu_backend(model_path: Path, options: BackendOptions) -> LiteRtBackend:
    return LiteRtBackend(model_path, replace(options, delegate="edgetpu"))
