"""Cut a quantized classifier at its pooled embedding, the input of its final classifier op.

Everything before that op is a general image feature extractor; everything from it on is
ImageNet-specific. Removing the head (and its weights) leaves a model whose output is the
embedding, which is what a new head is trained on and later grafted onto.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camapp.errors import ConfigError, shorten
from camapp.tflite import edit as tg
from camapp.tflite.graph import op_name
from camapp.tflite.modelfile import open_model

# Ops that may follow the classifier without changing which class wins.
_TAIL_OPS = {"SOFTMAX", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "LOGISTIC"}
_CLASSIFIER_OPS = {"FULLY_CONNECTED", "CONV_2D"}


@dataclass(frozen=True)
class CutModel:
    """A base model cut at its embedding, plus what a head grafted onto it must agree with."""

    model: bytes  # flatbuffer whose only output is the embedding
    base: str  # the base model's file name, for reports
    input_size: int  # square input side in pixels
    input_dtype: np.dtype
    input_scale: float
    input_zero_point: int
    dim: int  # embedding length
    dtype: np.dtype  # int8 or uint8, as the base computes it
    scale: float
    zero_point: int
    output_dtype: np.dtype  # the base classifier's output type: the graft matches it

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """Quantized embeddings -> float32 features."""
        return (raw.astype(np.float32) - self.zero_point) * np.float32(self.scale)


def _classifier_op(model: Any, origin: str) -> int:
    """Index of the op that turns the embedding into class scores: walk back from the output."""
    graph = model.subgraphs[0]
    made_by = tg.producers(graph)
    tensor, name = graph.outputs[0], "no op"
    while (index := made_by.get(tensor)) is not None:
        op = graph.operators[index]
        name = op_name(model, op)
        if name in _CLASSIFIER_OPS:
            return index
        if name not in _TAIL_OPS:
            break
        tensor = op.inputs[0]
    raise ConfigError(
        f"{shorten(origin)} is not a classifier with a FULLY_CONNECTED or 1x1 CONV_2D head to cut "
        f"(its output comes from {name[:40]})"
    )


def _embedding_tensor(model: Any, op_index: int, origin: str) -> int:
    """The classifier's input, checked to be a pooled vector (1x1 spatially) of 8-bit values."""
    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    tensor = graph.tensors[op.inputs[0]]
    weights = graph.tensors[op.inputs[1]]
    shape = [int(d) for d in tensor.shape]
    dim = int(weights.shape[-1])
    if int(np.prod(shape)) != dim:
        raise ConfigError(
            f"{shorten(origin)}: the classifier's input {shape} is not a pooled vector"
        )
    if tg.tensor_dtype(tensor) is None or not tg.quant_params(tensor)[0]:
        raise ConfigError(f"{shorten(origin)} is not an int8/uint8 quantized model")
    return op.inputs[0]


def _check_input(model: Any, origin: str) -> Any:
    """The input tensor, checked to be one square RGB image like camapp feeds."""
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1:
        raise ConfigError(f"{shorten(origin)} has {len(graph.inputs)} inputs; expected one image")
    tensor = graph.tensors[graph.inputs[0]]
    shape = [int(d) for d in tensor.shape]
    if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3:
        raise ConfigError(f"{shorten(origin)} does not take one square RGB image: input {shape}")
    return tensor


def cut_classifier(base: Path) -> CutModel:
    """Load `base` and return it cut at the pooled embedding, the classifier's weights dropped."""
    origin = str(base)
    model = open_model(base).editable()
    image = _check_input(model, origin)
    graph = model.subgraphs[0]
    out_dtype = tg.tensor_dtype(graph.tensors[graph.outputs[0]])
    embedding = _embedding_tensor(model, _classifier_op(model, origin), origin)
    # The metadata describes the old outputs (1001 ImageNet classes): it would now be a lie.
    tg.drop_metadata(model, b"TFLITE_METADATA")
    tg.prune(model, [embedding])
    out = graph.tensors[graph.outputs[0]]
    scale, zero_point = tg.quant_params(out)
    in_scale, in_zero = tg.quant_params(image)
    in_dtype = tg.tensor_dtype(image) or np.dtype(np.float32)
    return CutModel(
        model=tg.serialize(model),
        base=Path(base).name,
        input_size=int(image.shape[1]),
        input_dtype=in_dtype,
        input_scale=in_scale,
        input_zero_point=in_zero,
        dim=int(np.prod(out.shape)),
        dtype=tg.tensor_dtype(out),
        scale=scale,
        zero_point=zero_point,
        output_dtype=out_dtype or np.dtype(np.uint8),
    )
