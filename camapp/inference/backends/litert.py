"""LiteRT (TensorFlow Lite) on the CPU, with an optional delegate library.

`tflite_runtime` is used instead on old Pi images without LiteRT. The Edge TPU's delegate
is tried in a child process first (`probe_edgetpu`): a libedgetpu built for another
TensorFlow version crashes the runtime, and only a child can turn that into one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from camapp.config.schema import NonEmpty, setting
from camapp.devices import Devices
from camapp.errors import EXIT_USAGE, ConfigError, shorten
from camapp.inference.backend import BackendSettings, InputSpec, OutputSpec, register

log = logging.getLogger(__name__)

# Names of known delegates, as the shared library each one loads.
DELEGATES = {"edgetpu": "libedgetpu.so.1"}
# What LiteRT prints on stderr each time an interpreter is made: noise in the journal.
PLUGIN_SYMBOLS = ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")
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
        # The swap inside the try, and the restore first in the finally: a stop signal's
        # exception during start-up (app.stop_during_start) then leaves fd 2 as it was.
        try:
            os.dup2(held.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(True) if NOISE not in line]
            if kept:
                os.write(2, b"".join(kept))


# Seconds the Edge TPU probe's child may take to load the delegate and run the model once.
PROBE_TIMEOUT = 60.0
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
        probe = ctypes.CDLL(library)
    except OSError as exc:
        hint = " (install libedgetpu1-std and plug in the Coral)" if spec == "edgetpu" else ""
        raise ConfigError(f"cannot load delegate '{spec}': {exc}{hint}") from None
    # A library without the plugin entry points (libc) was an internal AttributeError, and
    # the destructor of the half-made delegate printed a traceback of its own.
    if missing := [name for name in PLUGIN_SYMBOLS if not hasattr(probe, name)]:
        raise ConfigError(
            f"cannot load delegate '{spec}': it is not a TFLite delegate (no {missing[0]})"
        )
    try:
        return interpreter_api()[1](library)
    except (ValueError, OSError, RuntimeError) as exc:
        if spec == "edgetpu":
            raise ConfigError(NO_EDGETPU) from None
        raise ConfigError(f"cannot load delegate '{spec}': {' '.join(str(exc).split())}") from None


class LiteRtSettings(BackendSettings):
    delegate: NonEmpty | None = setting(
        None, "a TFLite delegate library: 'edgetpu' or its path", metavar="DELEGATE"
    )


def _interpreter(model_path: Path, settings: LiteRtSettings) -> Any:
    """A LiteRT interpreter for the model, its tensors allocated, or one line saying why not."""
    interpreter_cls, _ = interpreter_api()
    delegates = [load_delegate(settings.delegate)] if settings.delegate else None
    try:
        with _without_noise():
            interp = interpreter_cls(
                model_path=str(model_path),
                num_threads=settings.threads,
                experimental_delegates=delegates,
            )
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "edgetpu-custom-op" in str(exc):
            first = "it is compiled for the Edge TPU: use --backend edgetpu"
        raise ConfigError(f"cannot load model {model_path}: {first}") from None
    return interp


@functools.cache
def probe_edgetpu(model_path: Path, threads: int) -> None:
    """Make the first Edge TPU interpreter of a model, and run it once, in a child process.

    libedgetpu1-std 16.0 is built against TensorFlow 2.5; runtimes from TensorFlow 2.12 on
    read a delegate field it does not fill, and users report segfaults: in this process that
    would be a crash, not a one-line error. A child that dies of a signal becomes one; any
    other failure is left to this process, which reports it as it always does.
    """
    command = [sys.executable, "-m", __name__, str(model_path), str(threads)]
    try:
        child = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the Edge TPU did not answer within {PROBE_TIMEOUT:g} s ({_versions()})"
        ) from None
    if child.returncode < 0:
        why = signal.Signals(-child.returncode).name
        raise ConfigError(
            f"the Edge TPU runtime crashed ({why}) making its first interpreter ({_versions()}):"
            " libedgetpu1-std 16.0 is built for TensorFlow 2.5, newer runtimes crash with it: "
            "install a libedgetpu built for the runtime's TensorFlow version (docs/accelerators.md)"
        )


def _versions() -> str:
    """The runtime's and libedgetpu's versions, as an error shows them."""
    runtime = "unknown runtime"
    for package in ("ai-edge-litert", "tflite-runtime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            runtime = f"{package} {importlib.metadata.version(package)}"
            break
    try:
        version = ctypes.CDLL(DELEGATES["edgetpu"]).edgetpu_version
        version.restype = ctypes.c_char_p
        library = version().decode(errors="replace")
    except (OSError, AttributeError):  # an older libedgetpu without its C API's version call
        library = "version unknown"
    return f"{runtime}, {DELEGATES['edgetpu']} {shorten(library)}"


def _probe_child(model_path: str, threads: str) -> int:
    """The child of probe_edgetpu: what the parent is about to do, where a crash is cheap."""
    try:
        settings = LiteRtSettings(threads=int(threads), delegate="edgetpu")
        _interpreter(Path(model_path), settings).invoke()
    except (ConfigError, ValueError, RuntimeError):  # the parent meets and reports it itself
        return EXIT_USAGE
    return 0


@register("litert", LiteRtSettings, tflite=True)
class LiteRtBackend:
    """One LiteRT interpreter. Not thread-safe: each worker owns one.

    `input_tensor`, `invoke` and `output_tensor` are the interpreter's own functions: views
    into its buffers, so preprocessing writes in place and a frame allocates nothing.
    """

    def __init__(self, model_path: Path, settings: LiteRtSettings, devices: Devices) -> None:
        if settings.delegate == "edgetpu":
            probe_edgetpu(model_path, settings.threads)
        interp = _interpreter(model_path, settings)
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


if __name__ == "__main__":  # the child of probe_edgetpu
    sys.exit(_probe_child(*sys.argv[1:3]))
