"""A float32 model from a quantized one: the float reference when no original can be had.

Every quantized constant becomes the real values it stands for (scale and zero point, per
channel where the model has them), every quantized activation becomes float32, and the
QUANTIZE/DEQUANTIZE ops at the edges (float-to-float copies once all is float) are removed, so
input and output take the values the quantized ones stood for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from camapp.errors import ConfigError, shorten
from camapp.tflite import bundle, edit
from camapp.tflite.modelfile import open_model, write

# Integer tensor types a quantized model stores, as the numpy dtype of their raw bytes.
_RAW_DTYPES = {"INT8": "<i1", "UINT8": "<u1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8"}


def _real_values(tensor: Any, raw: np.ndarray, type_name: str) -> np.ndarray:
    """A constant's stored integers as the float32 values they stand for."""
    q = tensor.quantization
    values = np.frombuffer(raw.tobytes(), _RAW_DTYPES[type_name]).astype(np.float32)
    values = values.reshape(tensor.shape if tensor.shape is not None else ())
    axis_shape = [1] * values.ndim
    if len(q.scale) > 1:
        axis_shape[q.quantizedDimension] = -1
    scale = np.asarray(q.scale, np.float32).reshape(axis_shape)
    zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else 0, np.float32)
    return (values - zero.reshape(axis_shape if zero.size > 1 else ())) * scale


def _dequantize_tensors(model: Any, path: Path) -> None:
    """Make every quantized tensor float32, replacing constants' data by their real values."""
    tensor_type = schema.TensorType
    names = {v: k for k, v in vars(tensor_type).items() if not k.startswith("_")}
    converted: dict[int, tuple] = {}  # buffer -> the quantization it was converted with
    for tensor in (t for g in model.subgraphs for t in g.tensors):
        q = tensor.quantization
        if q is None or q.scale is None or not len(q.scale):
            continue
        buffer = model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            key = (tensor.type, np.asarray(q.scale).tobytes(), np.asarray(q.zeroPoint).tobytes())
            seen = converted.get(tensor.buffer)
            if seen is None:
                type_name = names.get(tensor.type, str(tensor.type))
                if type_name not in _RAW_DTYPES:
                    raise ConfigError(f"model {path} holds {type_name} weights: not supported")
                floats = _real_values(tensor, buffer.data, type_name).astype("<f4")
                buffer.data = np.frombuffer(floats.tobytes(), np.uint8)
                converted[tensor.buffer] = key
            elif seen != key:
                raise ConfigError(f"model {path} shares weights between differing tensors")
        tensor.type = tensor_type.FLOAT32
        tensor.quantization = None


def _bypass_conversions(graph: Any, conversions: set[int], codes: list[int]) -> Callable:
    """Drop QUANTIZE/DEQUANTIZE ops; returns the map from a dropped op's output to the tensor
    that now stands for it."""
    alias: dict[int, int] = {}
    kept = []
    for op in graph.operators:
        if codes[op.opcodeIndex] in conversions:
            alias[op.outputs[0]] = op.inputs[0]
        else:
            kept.append(op)

    def resolve(index: int) -> int:
        while index in alias:
            index = alias[index]
        return index

    graph.operators = kept
    for op in kept:
        op.inputs = [resolve(i) for i in op.inputs]
    graph.outputs = [resolve(i) for i in graph.outputs]
    return resolve


def _drop_unused_codes(model: Any) -> None:
    """LiteRT's calibrator refuses a model listing an op code it has no float kernel for
    (QUANTIZE version 1 once dequantized), used or not."""
    used = sorted({op.opcodeIndex for g in model.subgraphs for op in g.operators})
    new = {old: k for k, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in (op for g in model.subgraphs for op in g.operators):
        op.opcodeIndex = new[op.opcodeIndex]


def _keep_clamps(model: Any) -> None:
    """Make explicit the clamp an 8-bit output range implies. A quantization-aware model
    (TF1's SSD) leaves an op's ReLU6 to its output range [0, 6] and its fused activation
    NONE; in float nothing would clip, and every later layer drifts (the SSD's scores all
    reached 1.0). A range starting at 0 is a ReLU, one from 0 to 6 a ReLU6."""
    none, relu, relu6 = (
        getattr(schema.ActivationFunctionType, n) for n in ("NONE", "RELU", "RELU6")
    )
    for graph in model.subgraphs:
        for op in graph.operators:
            options = op.builtinOptions
            if getattr(options, "fusedActivationFunction", relu) != none or not op.outputs:
                continue
            bounds = _range(graph.tensors[op.outputs[0]])
            if bounds is not None and abs(bounds[0]) < 1e-6:
                options.fusedActivationFunction = relu6 if abs(bounds[1] - 6) < 0.06 else relu


def _range(tensor: Any) -> tuple[float, float] | None:
    """The real values an 8-bit per-tensor quantized tensor can hold; None for others."""
    q = tensor.quantization
    bits = {schema.TensorType.UINT8: (0, 255), schema.TensorType.INT8: (-128, 127)}
    if tensor.type not in bits or q is None or q.scale is None or len(q.scale) != 1:
        return None
    zero = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    low, high = bits[tensor.type]
    return (low - zero) * float(q.scale[0]), (high - zero) * float(q.scale[0])


def _remove_conversions(model: Any) -> None:
    """Remove QUANTIZE/DEQUANTIZE ops and what only they used, keeping signatures right."""
    operators = schema.BuiltinOperator
    conversions = {operators.QUANTIZE, operators.DEQUANTIZE}
    codes = edit.builtin_codes(model)
    for index, graph in enumerate(model.subgraphs):
        resolve = _bypass_conversions(graph, conversions, codes)
        new = edit.compact_tensors(graph)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                for entry in (*(signature.inputs or []), *(signature.outputs or [])):
                    entry.tensorIndex = new[resolve(entry.tensorIndex)]
    _drop_unused_codes(model)


def dequantize_model(int8_path: Path, out_path: Path) -> None:
    """Write a float32 copy of a quantized model: real-valued weights, float input and output.

    Input and output then take what the quantized ones stood for (MobileNet: pixels in
    [-1, 1], probabilities). Labels embedded in the model are carried over.
    """
    source = open_model(int8_path)
    if not source.quantized:
        raise ConfigError(f"model {shorten(int8_path)} is not quantized: nothing to dequantize")
    if source.info.edgetpu:  # its graph is one compiled custom op: only its I/O would change
        raise ConfigError(
            f"model {shorten(int8_path)} is compiled for the Edge TPU: its layers cannot be "
            "dequantized; dequantize the CPU model it was compiled from"
        )
    model = source.editable()
    _keep_clamps(model)
    _dequantize_tensors(model, source.path)
    _remove_conversions(model)
    write(out_path, model, bundle.pack(source.bundle.members))
