"""ONNX Runtime on the CPU, for models that come as `.onnx` (PyTorch exports, converted models).

The input contract is LiteRT's: one image input, `[1, 3, H, W]` (NCHW) or `[1, H, W, 3]` (NHWC),
read from the graph. A float input's normalisation is in the model's metadata (`mean`, `std`:
the model sees (pixel - mean) / std; MobileNet's 127.5 when absent); an 8-bit input's
quantization is the DequantizeLinear that reads it (without one, a uint8 input takes raw
pixels). The output is one `[1, classes]` tensor: float, or 8-bit with the QuantizeLinear that
writes it. Chosen by `backend = "onnx"`, or by itself for a `.onnx` model.

The preprocessor writes H x W x 3; for an NCHW model `invoke` transposes that into the bound
input first (about 0.1 ms at 224 x 224, see benchmarks/onnx_vs_litert.py). Both buffers are
bound once (IOBinding), so a frame allocates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from camapp.devices import Devices
from camapp.errors import ConfigError
from camapp.inference.backend import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    BackendSettings,
    InputSpec,
    OutputSpec,
    register,
)

INSTALL_HINT = "onnxruntime is not installed: pip install 'camapp[onnx]'"
DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return onnxruntime


def _session(ort: Any, model_path: Path, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads would spin for work: CPU the budgets would have to pay for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: a warning would interleave with the output
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own error types (Fail, InvalidGraph, ...) are Exceptions
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot load model {model_path}: {first[:200]}") from None


def _layout(shape: list[Any]) -> str | None:
    """NCHW or NHWC from an input shape whose sizes are known (the batch may be symbolic)."""
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return None
    if shape[1] == 3:
        return "NCHW"
    return "NHWC" if shape[3] == 3 else None


def _classes(shape: list[Any]) -> int | None:
    """The number of classes of a (1, classes) output (the batch may be symbolic), else None."""
    if len(shape) != 2 or not (shape[0] == 1 or isinstance(shape[0], str) or shape[0] is None):
        return None
    return shape[1] if isinstance(shape[1], int) and shape[1] > 1 else None


def _quantization(model_path: Path, tensor: str, reader: bool) -> tuple[float, int] | None:
    """(scale, zero point) of the DequantizeLinear reading `tensor` (`reader`), or of the
    QuantizeLinear writing it; None when there is none or it is not per-tensor."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ConfigError(f"{model_path} has 8-bit tensors: pip install 'camapp[onnx]'") from None
    graph = onnx.load(str(model_path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    op, where = ("DequantizeLinear", 0) if reader else ("QuantizeLinear", None)
    for node in graph.node:
        linked = node.input[0] == tensor if where == 0 else node.output[0] == tensor
        if node.op_type == op and linked and len(node.input) == 3:
            scale, zero = consts.get(node.input[1]), consts.get(node.input[2])
            if scale is not None and zero is not None and scale.size == zero.size == 1:
                return float(scale.reshape(())), int(zero.reshape(()))
    return None


def _input_spec(model_path: Path, session: Any, inp: Any) -> InputSpec:
    layout, dtype = _layout(list(inp.shape)), DTYPES.get(inp.type)
    if layout is None or dtype is None:
        raise ConfigError(
            f"model {model_path} is not an image classifier: input {inp.shape} {inp.type}"
        )
    h, w = inp.shape[2:] if layout == "NCHW" else inp.shape[1:3]
    meta = session.get_modelmeta().custom_metadata_map
    try:
        mean, std = float(meta.get("mean", DEFAULT_MEAN)), float(meta.get("std", DEFAULT_STD))
    except ValueError:
        raise ConfigError(f"model {model_path}: metadata mean/std are not numbers") from None
    scale, zero = 0.0, 0
    if dtype is not np.float32:
        quant = _quantization(model_path, inp.name, reader=True)
        if quant is None and dtype is np.int8:
            raise ConfigError(f"model {model_path}: int8 input without a DequantizeLinear")
        scale, zero = quant or (0.0, 0)  # uint8 without one: raw pixels
    return InputSpec(h, w, np.dtype(dtype), scale, zero, (mean,), (std,), layout)


def _output_spec(model_path: Path, out: Any) -> OutputSpec:
    classes, dtype = _classes(list(out.shape)), DTYPES.get(out.type)
    if classes is None or dtype is None:
        raise ConfigError(
            f"model {model_path} is not an image classifier: output {out.shape} {out.type}"
        )
    if dtype is np.float32:
        return OutputSpec(classes)
    quant = _quantization(model_path, out.name, reader=False)
    if quant is None:
        raise ConfigError(f"model {model_path}: 8-bit output without a QuantizeLinear")
    return OutputSpec(classes, *quant)


@register("onnx")
class OnnxBackend:
    """One ONNX Runtime session. Like a LiteRT interpreter, each worker owns one."""

    def __init__(self, model_path: Path, settings: BackendSettings, devices: Devices) -> None:
        ort = _import_ort()
        session = _session(ort, model_path, settings.threads)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ConfigError(
                f"model {model_path} is not an image classifier: "
                f"{len(inputs)} inputs, {len(outputs)} outputs"
            )
        self.input = spec = _input_spec(model_path, session, inputs[0])
        self.output = _output_spec(model_path, outputs[0])
        h, w = spec.height, spec.width
        self._hwc = np.zeros((1, h, w, 3), spec.dtype)  # what the preprocessor writes
        bound = self._hwc if spec.layout == "NHWC" else np.zeros((1, 3, h, w), spec.dtype)
        self._nchw = None if bound is self._hwc else bound
        self._scores = np.zeros((1, self.output.classes), DTYPES[outputs[0].type])
        binding = session.io_binding()
        binding.bind_cpu_input(inputs[0].name, bound)
        scores = self._scores
        binding.bind_output(
            outputs[0].name, "cpu", 0, scores.dtype, scores.shape, scores.ctypes.data
        )
        self._run: Callable[[Any], None] = session.run_with_iobinding
        self._binding = binding
        self.input_tensor = lambda: self._hwc
        self.output_tensor = lambda: self._scores

    def invoke(self) -> None:
        if self._nchw is not None:
            np.copyto(self._nchw, self._hwc.transpose(0, 3, 1, 2))
        try:
            self._run(self._binding)
        except Exception as exc:  # the classifier reports RuntimeErrors as failed inference
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RuntimeError(first) from None
