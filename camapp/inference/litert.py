"""TFLite classification: one interpreter per worker, quantized in, top-k dequantized out."""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camapp.errors import CamappError, ConfigError
from camapp.inference.preprocess import Preprocessor

# Names of known delegates, as the shared library each one loads.
DELEGATES = {"edgetpu": "libedgetpu.so.1"}


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
        raise ConfigError(f"cannot load delegate '{spec}': {exc}") from None


@dataclass(frozen=True, slots=True)
class Prediction:
    class_id: int
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Classification:
    top_k: list[Prediction]  # best first
    inference_ms: float


class Classifier:
    """One interpreter and its preprocessor. Not thread-safe: each worker owns one.

    The preprocessor writes straight into the interpreter's input tensor and only the top-k
    scores are dequantized, so a frame costs no allocation beyond its small result.
    """

    def __init__(
        self,
        model_path: Path,
        labels: list[str],
        threads: int = 1,
        delegate: str | None = None,
        top_k: int = 5,
        crop: str = "center",
    ) -> None:
        interpreter_cls, _ = interpreter_api()
        delegates = [load_delegate(delegate)] if delegate else None
        try:
            self._interp = interpreter_cls(
                model_path=str(model_path),
                num_threads=threads,
                experimental_delegates=delegates,
            )
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "edgetpu-custom-op" in str(exc):
                first = "it is compiled for the Edge TPU: use --delegate edgetpu"
            raise ConfigError(f"cannot load model {model_path}: {first}") from None
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        shape, classes = tuple(inp["shape"]), int(out["shape"][-1])
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3:
            raise ConfigError(f"model {model_path} is not an image classifier: input {shape}")
        # Models trained without a background class have one label too many.
        self._label_offset = len(labels) - classes
        if self._label_offset not in (0, 1):
            raise ConfigError(
                f"model {model_path} has {classes} classes but the labels have {len(labels)}"
            )
        self.labels = labels
        self.size = int(shape[1])
        self.top_k = max(1, min(top_k, classes))
        scale, zero_point = inp["quantization"]
        self.preprocess = Preprocessor(self.size, inp["dtype"], scale, zero_point, crop)
        self._input = self._interp.tensor(inp["index"])
        self._output = self._interp.tensor(out["index"])
        self._out_scale, self._out_zero = out["quantization"]

    def classify(self, image: np.ndarray, bgr: bool = False) -> Classification:
        # Views into the interpreter's buffers must be gone before invoke(), or it refuses.
        self.preprocess(image, bgr, self._input()[0])
        start = time.perf_counter()
        try:
            self._interp.invoke()
        except RuntimeError as exc:
            raise CamappError(f"inference failed: {exc}") from None
        inference_ms = (time.perf_counter() - start) * 1000
        return Classification(self._top(self._output()[0]), inference_ms)

    def _top(self, scores: np.ndarray) -> list[Prediction]:
        # ndarray methods and tolist(): this runs per frame holding the GIL, and numpy's
        # module-level wrappers and per-element int()/float() triple its Python calls.
        k = self.top_k
        best = scores.argpartition(-k)[-k:]
        best = best[scores[best].argsort()[::-1]]
        values = scores[best].astype(np.float64)
        if self._out_scale:
            values = (values - self._out_zero) * self._out_scale
        return [
            Prediction(i, self.labels[i + self._label_offset], round(v, 4))
            for i, v in zip(best.tolist(), values.tolist(), strict=True)
        ]
