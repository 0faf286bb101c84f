"""What a parsed .tflite graph is, judged without running it.

`describe()` lists inputs, outputs, op types, parameter and MAC counts, the Edge TPU flag,
the metadata's input normalisation and the bundled labels; `kind()` says what sort of
model that is; `check_classifier()` answers "is this an image classifier, and do these
labels fit it" with a ClassifierSpec or a one-line ConfigError before a camera is opened.
No interpreter is built, so an Edge TPU model is described on any host. The file itself is
read by `modelfile.open_model()`, the one reader of .tflite bytes.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from camapp.errors import ConfigError, shorten
from camapp.tflite import metadata

_BUILTINS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_DTYPES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
EDGETPU_OP = "edgetpu-custom-op"  # an Edge TPU build holds its whole graph in this op
DETECTION_OP = "TFLite_Detection_PostProcess"
# Ops that only reshape or requantize: a tensor's producer is looked for behind them.
_RELAYOUT = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "CAST"})
# Pooling and normalisation: a vector straight out of one is features, not class scores.
_POOLING = frozenset({"MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SUM", "L2_NORMALIZATION"})
_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA
# A raw detector output has many more anchors than values per anchor (YOLOv8 at 320: 2100
# anchors of 84 values); a segmentation map is square-ish.
_MIN_ANCHORS, _ANCHORS_PER_ROW = 64, 4
_BACKGROUND = frozenset({"background", "__background__", "???", "unknown"})
# MACs per output element, from the weights' shape (whose rank is given first):
#   CONV_2D            weights [Cout, Kh, Kw, Cin]  ->  Kh * Kw * Cin
#   DEPTHWISE_CONV_2D  weights [1, Kh, Kw, Cout]    ->  Kh * Kw
#   FULLY_CONNECTED    weights [units, depth]       ->  depth
_MACS_PER_OUTPUT = {
    "CONV_2D": (4, lambda w: w[1] * w[2] * w[3]),
    "DEPTHWISE_CONV_2D": (4, lambda w: w[1] * w[2]),
    "FULLY_CONNECTED": (2, lambda w: w[1]),
}

# Tensor index -> (op type, op) of the op writing it.
_Producers = dict[int, tuple[str, Any]]


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of the main subgraph."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy's name for it: "uint8", "int8", "float32", ...
    scale: tuple[float, ...]  # () when not quantized, one per channel when per-channel
    zero_point: tuple[int, ...]
    producer: str | None  # op computing it, seen through reshapes; None for a graph input

    @property
    def quantized(self) -> bool:
        return any(self.scale)

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class GraphInfo:
    """What describe() reads from a model file."""

    path: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_types: tuple[str, ...]  # builtin names, custom ops by their code; in first-use order
    params: int | None  # None for an Edge TPU build: its layers are compiled out of sight
    macs: int | None  # per inference; None too when a counted op has no static shape
    edgetpu: bool
    mean: tuple[float, ...] | None  # input normalisation (x - mean) / std, from metadata
    std: tuple[float, ...] | None
    label_files: tuple[str, ...]  # label files the metadata names for the outputs
    labels: tuple[str, ...] = field(repr=False)  # labels embedded in the model's zip, or ()


class Kind(enum.StrEnum):
    CLASSIFIER = "classifier"
    DETECTOR = "detector"
    SEGMENTER = "segmenter"
    POSE = "pose"
    EMBEDDING = "embedding"
    OTHER = "other"


@dataclass(frozen=True)
class ClassifierSpec:
    """The input contract and classes of an image classifier, checked against its labels."""

    path: str
    input_size: tuple[int, int]  # (height, width)
    layout: str  # "NHWC" or "NCHW"
    channels: int
    dtype: str
    quantization: tuple[float, int] | None  # input (scale, zero point); None if float
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    classes: int
    label_offset: int  # 1 when labels[0] is a background the model lacks: class i = labels[i+1]


def describe(model: schema.ModelT, path: str, labels: Sequence[str]) -> GraphInfo:
    """What a parsed model holds: its tensors, ops, size, cost and declared preprocessing;
    `labels` are those bundled with it."""
    graph = model.subgraphs[0]
    ops = [(op_name(model, op), op) for op in graph.operators or ()]
    producers = {out: named for named in ops for out in _indices(named[1].outputs)}
    op_types = tuple(dict.fromkeys(name for name, _ in ops))
    edgetpu = EDGETPU_OP in op_types
    meta = _metadata(path, model)
    return GraphInfo(
        path=path,
        inputs=tuple(_tensor(graph, i, producers) for i in _indices(graph.inputs)),
        outputs=tuple(_tensor(graph, i, producers) for i in _indices(graph.outputs)),
        op_types=op_types,
        params=None if edgetpu else _params(model, graph, ops, producers),
        macs=None if edgetpu else _macs(graph, ops),
        edgetpu=edgetpu,
        mean=meta.mean if meta else None,
        std=meta.std if meta else None,
        label_files=meta.label_files if meta else (),
        labels=tuple(labels),
    )


def op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    """An operator's builtin name ("FULLY_CONNECTED"), or a custom op's own code."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return _text(code.customCode) or "CUSTOM"
    return _BUILTINS.get(builtin, f"BUILTIN_{builtin}")


def _tensor(graph: schema.SubGraphT, index: int, producers: _Producers) -> TensorInfo:
    tensor = graph.tensors[index]
    quant = tensor.quantization
    scale = () if quant is None or quant.scale is None else quant.scale
    zero_point = () if quant is None or quant.zeroPoint is None else quant.zeroPoint
    return TensorInfo(
        name=_text(tensor.name),
        shape=_indices(tensor.shape),
        dtype=_DTYPES.get(tensor.type, f"type {tensor.type}"),
        scale=tuple(float(s) for s in scale),
        zero_point=tuple(int(z) for z in zero_point),
        producer=_producer(index, producers),
    )


def _producer(index: int, producers: _Producers) -> str | None:
    """The op computing a tensor, seen through ops that only reshape or requantize."""
    for _ in range(len(producers) + 1):  # a corrupt graph may have a cycle
        if index not in producers:
            return None
        name, op = producers[index]
        inputs = _indices(op.inputs)
        if name not in _RELAYOUT or not inputs:
            return name
        index = inputs[0]
    return None


def _macs(graph: schema.SubGraphT, ops: list[tuple[str, Any]]) -> int | None:
    """Multiply-accumulates per inference: for each conv, depthwise conv and fully connected
    op, its output elements times the MACs each needs (_MACS_PER_OUTPUT). Adds, pools,
    activations and resizes are left out, as in the MobileNet papers' counts."""
    total = 0
    for name, op in ops:
        if name not in _MACS_PER_OUTPUT:
            continue
        rank, per_output = _MACS_PER_OUTPUT[name]
        inputs, outputs = _indices(op.inputs), _indices(op.outputs)
        if len(inputs) < 2 or inputs[1] < 0 or not outputs:
            return None
        weights = _indices(graph.tensors[inputs[1]].shape)
        shape = _indices(graph.tensors[outputs[0]].shape)
        if len(weights) != rank or not shape or min(weights + shape) < 1:
            return None  # no static shape: the count would be a guess
        total += math.prod(shape) * per_output(weights)
    return total


def _params(
    model: schema.ModelT, graph: schema.SubGraphT, ops: list[tuple[str, Any]], producers: _Producers
) -> int:
    """Elements of the constant weights and biases of the ops _macs counts, each tensor once."""
    counted = {
        _stored(model, graph, index, producers)
        for name, op in ops
        if name in _MACS_PER_OUTPUT
        for index in _indices(op.inputs)[1:3]
    }
    counted.discard(None)
    return sum(math.prod(_indices(graph.tensors[i].shape)) for i in counted)


def _stored(
    model: schema.ModelT, graph: schema.SubGraphT, index: int, producers: _Producers
) -> int | None:
    """The constant holding an op input's values: the input itself, or the compressed
    (e.g. float16) weights a DEQUANTIZE op expands into it; None for a computed input."""
    if _is_constant(model, graph, index):
        return index
    name, op = producers.get(index, ("", None))
    source = _indices(op.inputs)[:1] if name == "DEQUANTIZE" else ()
    return source[0] if source and _is_constant(model, graph, source[0]) else None


def _is_constant(model: schema.ModelT, graph: schema.SubGraphT, index: int) -> bool:
    """A tensor whose values are stored in the file (buffer 0 is the empty sentinel)."""
    if index < 0:
        return False  # an optional input left out
    buffer = graph.tensors[index].buffer
    if not 0 < buffer < len(model.buffers or ()):
        return False
    data = model.buffers[buffer].data
    return bool(data is not None and len(data)) or bool(model.buffers[buffer].size)


def _metadata(path: str, model: schema.ModelT) -> metadata.ModelMetadata | None:
    for entry in model.metadata or ():
        if entry.name == metadata.NAME:
            data = model.buffers[entry.buffer].data
            try:
                return metadata.parse(b"" if data is None else data.tobytes())
            except ValueError as exc:
                raise invalid(path, f"corrupt {metadata.NAME.decode()}: {exc}") from None
    return None


def _image(inputs: Sequence[TensorInfo]) -> tuple[str, int, int, int] | None:
    """(layout, height, width, channels) when the model takes exactly one image."""
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return None
    _, a, b, c = inputs[0].shape
    if c in _CHANNELS and a > 1 and b > 1:
        return "NHWC", a, b, c
    if a in _CHANNELS and b > 1 and c > 1:
        return "NCHW", b, c, a
    return None


def kind(info: GraphInfo) -> tuple[Kind, str]:
    """What sort of model this is, judged from its tensors and ops, and why (a noun phrase).

    First match wins:
    - other: the input is not one image (N x H x W x C or N x C x H x W);
    - detector: a TFLite_Detection_PostProcess op, or 4 outputs one of which is boxes [N, n, 4],
      or one raw output [1, 4 + classes, anchors] (YOLO's, no NMS in the graph) or its transpose;
    - pose: an output [1, ..., 1, K, 2|3], K keypoints of (y, x[, score]), e.g. 1x1x17x3;
    - segmenter: an output map per pixel: [N, H, W, C] with H, W > 1, or [N, H, W] at the
      input's resolution (an argmax label map, like deeplab's 1x513x513);
    - embedding: a single vector output that comes straight out of pooling or L2
      normalisation (MEAN, AVERAGE_POOL_2D, ...): features with no layer scoring classes;
    - classifier: a single vector output [1, ..., 1, n] computed any other way (softmax,
      logits from a fully connected or 1x1 conv layer, an Edge TPU op, ...);
    - other: anything else.
    Deciding "embedding" by what the vector comes from, rather than by a missing softmax,
    keeps logits-only classifiers and compiled Edge TPU models classifiers.
    """
    image = _image(info.inputs)
    if image is None:
        shapes = ", ".join(_dims(t.shape) for t in info.inputs) or "none"
        return Kind.OTHER, f"its input ({shapes}) is not one image (NxHxWxC or NxCxHxW)"
    outputs = info.outputs
    if DETECTION_OP in info.op_types:
        return Kind.DETECTOR, f"object detection model ({DETECTION_OP} op)"
    boxes = [t.shape for t in outputs if len(t.shape) == 3 and t.shape[-1] == 4]
    if len(outputs) == 4 and boxes:
        return Kind.DETECTOR, f"object detection model (boxes {_dims(boxes[0])})"
    if len(outputs) == 1 and _is_raw_detections(outputs[0].shape):
        return Kind.DETECTOR, f"object detection model (raw output {_dims(outputs[0].shape)})"
    dense = _dense_kind([t.shape for t in outputs], image[1:3])
    if dense is not None:
        return dense
    if len(outputs) == 1 and _is_vector(outputs[0].shape):
        out = outputs[0]
        if out.producer in _POOLING:
            return Kind.EMBEDDING, (
                f"feature embedding model (output {_dims(out.shape)} from {out.producer}, "
                "no classification layer)"
            )
        return Kind.CLASSIFIER, f"image classifier ({out.shape[-1]} classes)"
    shapes = ", ".join(_dims(t.shape) for t in outputs) or "none"
    return Kind.OTHER, f"its outputs ({shapes}) are not one vector of class scores"


def _dense_kind(
    shapes: list[tuple[int, ...]], input_size: tuple[int, int]
) -> tuple[Kind, str] | None:
    """Pose keypoints first: [1, 17, 3] would also pass for a small map."""
    for shape in shapes:
        if len(shape) >= 3 and shape[-1] in (2, 3) and shape[-2] > 1 and max(shape[:-2]) == 1:
            return Kind.POSE, f"pose estimation model (output {_dims(shape)}: keypoints)"
    for shape in shapes:
        nhwc = len(shape) == 4 and shape[1] > 1 and shape[2] > 1
        if nhwc or (len(shape) == 3 and shape[1:] == input_size):
            return Kind.SEGMENTER, f"semantic segmentation model (output {_dims(shape)} per pixel)"
    return None


def _is_raw_detections(shape: tuple[int, ...]) -> bool:
    """[1, 4 + classes, anchors] or [1, anchors, 4 + classes]: a box and class scores for
    each of many more anchors than rows (YOLOv8 640: 84 x 8400), never a square map."""
    if len(shape) != 3 or shape[0] != 1:
        return False
    rows, anchors = sorted(shape[1:])
    return rows >= 5 and anchors >= max(_MIN_ANCHORS, _ANCHORS_PER_ROW * rows)


def _is_vector(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 1 and shape[-1] > 1 and all(d == 1 for d in shape[:-1])


def check_classifier(info: GraphInfo, labels: Sequence[str] | None = None) -> ClassifierSpec:
    """Check that a model is an image classifier whose classes fit `labels` (by default the
    labels bundled with it, if any): its spec, or a one-line ConfigError saying what is wrong.

    Labels fit when there is one per class, or one more when the first is a background
    class the model lacks (then class i is labels[i + 1]).
    """
    path = info.path
    what, why = kind(info)
    image = _image(info.inputs)
    if what is not Kind.CLASSIFIER or image is None:
        detail = why if what is Kind.OTHER else f"it looks like a {why}"
        raise ConfigError(f"{shorten(path)} is not an image classifier: {detail}")
    layout, height, width, channels = image
    for name, values in (("mean", info.mean), ("std", info.std)):
        if values is not None and len(values) not in (1, channels):
            raise ConfigError(
                f"{shorten(path)} metadata gives {len(values)} normalisation {name} values "
                f"for {channels} channels"
            )
    tensor, classes = info.inputs[0], info.outputs[0].shape[-1]
    zero_point = tensor.zero_point[0] if tensor.zero_point else 0
    return ClassifierSpec(
        path=path,
        input_size=(height, width),
        layout=layout,
        channels=channels,
        dtype=tensor.dtype,
        quantization=(tensor.scale[0], zero_point) if tensor.quantized else None,
        mean=info.mean,
        std=info.std,
        classes=classes,
        label_offset=label_offset(
            path, info.labels if labels is None else labels, classes, info.labels
        ),
    )


def label_offset(
    path: str | os.PathLike[str], labels: Sequence[str], classes: int, own: Sequence[str] = ()
) -> int:
    """0 when labels fit the classes one to one; 1 when they add a background class first that
    the model lacks (class i is labels[i + 1]). That extra line is taken only where it is
    unambiguous: not when the model's `own` labels start with a background class, since then
    the model has that class itself and the file's extra line is somewhere else (taking it
    would shift every label by one)."""
    count = len(labels)
    if not labels or count == classes:
        return 0
    background = count == classes + 1 and _is_background(labels[0])
    if background and not (own and _is_background(own[0])):
        return 1
    extra = ""
    if background:
        extra = f"; the model's own {len(own)} labels start with {own[0][:40]!r} already"
    elif count == classes + 1:
        extra = f"; the extra first label {labels[0][:40]!r} is not a background class"
    raise ConfigError(
        f"labels do not fit {shorten(path)}: {count} labels for {classes} classes "
        f"(need {classes}, or {classes + 1} with a background label first{extra})"
    )


def _is_background(label: str) -> bool:
    return label.strip().lower() in _BACKGROUND


def _indices(values: Any) -> tuple[int, ...]:
    """Plain ints from a flatbuffer vector (a numpy view, or None when absent)."""
    return () if values is None else tuple(int(v) for v in values)


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace")


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def invalid(path: str | os.PathLike[str], why: str) -> ConfigError:
    """The one wording of every refusal of a file that is not a usable TFLite model."""
    return ConfigError(f"not a valid TFLite model: {shorten(path)} ({why})")
