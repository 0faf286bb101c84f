"""Quantize a trained head and graft it onto the cut base: one ordinary int8 .tflite.

The head becomes FULLY_CONNECTED (int8 weights per output channel, int32 bias at
input scale x weight scale, as TFLite's int8 kernels require) + SOFTMAX, with a QUANTIZE
in front for uint8 bases and one behind when the base answered in uint8. The labels and
the crop/region settings ride in a zip appended to the flatbuffer, as the shared models
carry their labels, so `camapp classify --model OUT.tflite` needs nothing else.
(Prior art: libcoral's AppendFullyConnectedAndSoftmaxLayerToModel, in C++.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from camapp.errors import ConfigError, os_reason, shorten
from camapp.inference.backends.litert import interpreter_api
from camapp.tflite import bundle, modelfile
from camapp.tflite import edit as tg
from camapp.training.cut import CutModel
from camapp.training.head import Head

_SOFTMAX_SCALE, _INT8_SOFTMAX_ZERO = 1 / 256, -128
_LOGIT_MARGIN = 0.25  # widen the calibrated logit range so unseen frames rarely saturate


@dataclass(frozen=True)
class QuantizedHead:
    """The head as int8 weights, int32 bias and the int8 logits' quantization."""

    weights: np.ndarray  # (classes, dim) int8
    weight_scales: np.ndarray  # (classes,) float32
    bias: np.ndarray  # (classes,) int32
    input_scale: float  # of the int8 embedding the FC reads
    input_zero_point: int
    logit_scale: float
    logit_zero_point: int


def quantize_head(head: Head, cut: CutModel, calibration: np.ndarray) -> QuantizedHead:
    """Quantize `head` for the int8 embedding of `cut`; `calibration` (float embeddings,
    e.g. the training set) sets the logits' range."""
    # A uint8 embedding is shifted to int8 by a QUANTIZE op: same scale, zero point - 128.
    zero = cut.zero_point - 128 if cut.dtype == np.uint8 else cut.zero_point
    scales = np.maximum(np.abs(head.weights).max(axis=1), 1e-8) / 127
    weights = np.clip(np.round(head.weights / scales[:, None]), -127, 127).astype(np.int8)
    bias_scales = cut.scale * scales
    limit = np.iinfo(np.int32).max
    bias = np.clip(np.round(head.bias / bias_scales), -limit, limit).astype(np.int32)
    logits = head.logits(calibration) if len(calibration) else np.zeros((1, 1))
    lo, hi = min(float(logits.min()), 0.0), max(float(logits.max()), 0.0)
    lo, hi = lo - _LOGIT_MARGIN * (hi - lo), hi + _LOGIT_MARGIN * (hi - lo)
    scale = max(hi - lo, 1e-3) / 255
    return QuantizedHead(
        weights=weights,
        weight_scales=scales.astype(np.float32),
        bias=bias,
        input_scale=cut.scale,
        input_zero_point=zero,
        logit_scale=scale,
        logit_zero_point=int(np.clip(round(-128 - lo / scale), -128, 127)),
    )


def _fc_options() -> tuple[int, Any]:
    options = schema.FullyConnectedOptionsT()
    options.keepNumDims = False
    return schema.BuiltinOptions.FullyConnectedOptions, options


def _softmax_options() -> tuple[int, Any]:
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    return schema.BuiltinOptions.SoftmaxOptions, options


def _append_head(model: Any, embedding: int, cut: CutModel, q: QuantizedHead) -> int:
    """Add the head's ops after tensor `embedding`; return the new output tensor."""
    op = tg.Op
    classes, dim = q.weights.shape
    x = embedding
    if cut.dtype == np.uint8:
        x = tg.add_tensor(
            model, "head/input_int8", [1, dim], np.int8, [q.input_scale], [q.input_zero_point]
        )
        tg.add_op(model, op.QUANTIZE, 2, [embedding], [x])
    w = tg.add_tensor(
        model, "head/weights", [classes, dim], np.int8, q.weight_scales, [0] * classes, q.weights
    )
    b = tg.add_tensor(
        model,
        "head/bias",
        [classes],
        np.int32,
        q.weight_scales * q.input_scale,
        [0] * classes,
        q.bias,
    )
    logits = tg.add_tensor(
        model, "head/logits", [1, classes], np.int8, [q.logit_scale], [q.logit_zero_point]
    )
    tg.add_op(model, op.FULLY_CONNECTED, 4, [x, w, b], [logits], _fc_options())
    probs = tg.add_tensor(
        model, "head/probabilities", [1, classes], np.int8, [_SOFTMAX_SCALE], [_INT8_SOFTMAX_ZERO]
    )
    tg.add_op(model, op.SOFTMAX, 2, [logits], [probs], _softmax_options())
    if cut.output_dtype != np.uint8:
        return probs
    out = tg.add_tensor(
        model, "head/probabilities_uint8", [1, classes], np.uint8, [_SOFTMAX_SCALE], [0]
    )
    tg.add_op(model, op.QUANTIZE, 2, [probs], [out])
    return out


def grafted_model(cut: CutModel, q: QuantizedHead) -> bytes:
    """The cut base with the head appended, as flatbuffer bytes (no labels yet)."""
    model = modelfile.parse(bytearray(cut.model), cut.base)
    graph = model.subgraphs[0]
    graph.outputs = [_append_head(model, graph.outputs[0], cut, q)]
    return tg.serialize(model)


def head_only_model(cut: CutModel, q: QuantizedHead) -> bytes:
    """Just the grafted ops, reading a quantized embedding: runs the exact int8 head on
    cached embeddings (a whole batch per invoke) to compare it with the float head."""
    model = schema.ModelT()
    model.version, model.operatorCodes, model.buffers = 3, [], [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors, graph.operators = [], []
    model.subgraphs = [graph]
    embedding = tg.add_tensor(
        model, "embedding", [1, cut.dim], cut.dtype, [cut.scale], [cut.zero_point]
    )
    graph.inputs = [embedding]
    graph.outputs = [_append_head(model, embedding, cut, q)]
    return tg.serialize(model)


def out_folder(out: Path) -> Path:
    """Make the model's folder now, so a missing or unwritable one is said before the
    minutes of embedding, not after."""
    folder = Path(out).parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {shorten(out)}: {shorten(folder)} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the folder of --out {shorten(out)}: {os_reason(exc)}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write into {shorten(folder)} (for --out {shorten(out)})")
    return Path(out)


def write_model(out: Path, flatbuffer: bytes, labels: list[str], meta: dict[str, Any]) -> int:
    """Write the grafted model with its labels and record (atomically); return the size."""
    return modelfile.write(out, flatbuffer, bundle.trained(labels, meta))


def int8_scores(cut: CutModel, q: QuantizedHead, raw: np.ndarray) -> np.ndarray:
    """Class probabilities of the quantized head, as the grafted model computes them, for
    a batch of raw (quantized) embeddings: one invoke of the head-only model."""
    if not len(raw):
        return np.zeros((0, len(q.bias)), np.float32)
    interp = interpreter_api()[0](model_content=head_only_model(cut, q), num_threads=1)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [len(raw), cut.dim])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], np.ascontiguousarray(raw.reshape(len(raw), cut.dim)))
    interp.invoke()
    out = interp.get_output_details()[0]
    scale, zero = out["quantization"]
    return (interp.get_tensor(out["index"]).astype(np.float32) - zero) * scale
