"""LiteRT (TensorFlow Lite) on the CPU, with an optional delegate library.

`tflite_runtime` is used instead on old Pi images without LiteRT.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from camapp.errors import ConfigError
from camapp.inference.backend import BackendOptions, InputSpec, OutputSpec, register

log = logging.getLogger(__name__)

# Names of known delegates, as the shared library each one loads.
DELEGATES = {"edgetpu": "libedgetpu.so.1"}
# What LiteRT prints on stderr each time an interpreter is made: noise in the journal.
NOISE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_noise() -> Iterator[None]:
    """LiteRT's C++ prints NOISE straight to stderr, with no setting to stop it: hold stderr
    in a file while an interpreter is made, then pass on all of it but that line (all of
    it with --debug). Nothing else written meanwhile, by any thread, is lost."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(True) if NOISE not in line]
            if kept:
                os.write(2, b"".join(kept))


# libedgetpu loads but creates no delegate: it found no Edge TPU. A USB Accelerator shows in
# lsusb as 1a6e:089a until its firmware is loaded, then as 18d1:9302.
NO_EDGETPU = (
    "no Edge TPU found: libedgetpu is installed but no Coral answered "
    "(plug the USB Accelerator in, then check with lsusb: 1a6e:089a or 18d1:9302)"
)


def interpreter_api() -> tuple[type, Any]:
    """(Interpreter, load_delegate) from LiteRT, or tflite_runtime on old Pi images."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError:
            raise ConfigError("no TFLite runtime installed: pip install ai-edge-litert") from None
    return Interpreter, load_delegate


def load_delegate(spec: str) -> Any:
    """Load a delegate by name (`edgetpu`) or by library path, or explain why it cannot load."""
    library = DELEGATES.get(spec, spec)
    try:
        # Probe first: a failed load_delegate() prints a stray traceback from its destructor.
        ctypes.CDLL(library)
    except OSError as exc:
        hint = " (install libedgetpu1-std and plug in the Coral)" if spec == "edgetpu" else ""
        raise ConfigError(f"cannot load delegate '{spec}': {exc}{hint}") from None
    try:
        return interpreter_api()[1](library)
    except (ValueError, OSError, RuntimeError) as exc:
        if spec == "edgetpu":
            raise ConfigError(NO_EDGETPU) from None
        raise ConfigError(f"cannot load delegate '{spec}': {' '.join(str(exc).split())}") from None


@register("litert", tflite=True)
class LiteRtBackend:
    """One LiteRT interpreter. Not thread-safe: each worker owns one.

    `input_tensor`, `invoke` and `output_tensor` are the interpreter's own functions: views
    into its buffers, so preprocessing writes in place and a frame allocates nothing.
    """

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        interpreter_cls, _ = interpreter_api()
        delegates = [load_delegate(options.delegate)] if options.delegate else None
        try:
            with _without_noise():
                interp = interpreter_cls(
                    model_path=str(model_path),
                    num_threads=options.threads,
                    experimental_delegates=delegates,
                )
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "edgetpu-custom-op" in str(exc):
                first = "it is compiled for the Edge TPU: use --backend edgetpu"
            raise ConfigError(f"cannot load model {model_path}: {first}") from None
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        shape = tuple(int(d) for d in inp["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ConfigError(f"model {model_path} is not an image classifier: input {shape}")
        scale, zero_point = inp["quantization"]
        self.input = InputSpec(shape[1], shape[2], np.dtype(inp["dtype"]), scale, int(zero_point))
        out_scale, out_zero = out["quantization"]
        self.output = OutputSpec(int(out["shape"][-1]), out_scale, int(out_zero))
        self.interpreter = interp  # every output, for models with several (detectors)
        self.input_tensor = interp.tensor(inp["index"])
        self.invoke = interp.invoke
        self.output_tensor = interp.tensor(out["index"])
