"""Graph edits on the object form of a .tflite flatbuffer (LiteRT's own `ModelT`).

Training cuts a base classifier at its pooled embedding and appends a new head; dequantize
removes the conversions at a model's edges; quantize widens ranges. All are plain graph
surgery on a ModelFile's `editable()` copy, with no TensorFlow, so they run on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

Op = schema.BuiltinOperator
_DTYPES = {schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8}
_TYPE_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_TYPE_CODES[np.dtype(np.int32)] = schema.TensorType.INT32


def serialize(model: Any) -> bytes:
    """A `ModelT` back into an ordinary flatbuffer."""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def builtin_codes(model: Any) -> list[int]:
    """The BuiltinOperator of each of the model's operator codes, by index."""
    return [flatbuffer_utils.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]


def tensor_dtype(tensor: Any) -> np.dtype | None:
    """numpy dtype of an 8-bit tensor, None for any other type."""
    kind = _DTYPES.get(tensor.type)
    return None if kind is None else np.dtype(kind)


def quant_params(tensor: Any) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor; (0.0, 0) when unquantized."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return 0.0, 0
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None else 0


def producers(graph: Any) -> dict[int, int]:
    """Tensor index -> index of the op that writes it."""
    return {t: i for i, op in enumerate(graph.operators) for t in op.outputs}


def prune(model: Any, outputs: Sequence[int]) -> None:
    """Make `outputs` the graph's outputs and drop every op, tensor and buffer they don't need."""
    graph = model.subgraphs[0]
    made_by = producers(graph)
    needed_ops: set[int] = set()
    stack = list(outputs)
    while stack:
        op_index = made_by.get(stack.pop())
        if op_index is not None and op_index not in needed_ops:
            needed_ops.add(op_index)
            stack.extend(t for t in graph.operators[op_index].inputs if t >= 0)
    graph.operators = [op for i, op in enumerate(graph.operators) if i in needed_ops]
    graph.outputs = list(outputs)
    model.signatureDefs = []  # they name tensors by their old numbers and outputs
    compact_tensors(graph)
    _compact_buffers(model)


def compact_tensors(graph: Any) -> dict[int, int]:
    """Drop tensors no op or graph edge uses any more, renumbering the rest in their old
    order; returns old index -> new index."""
    ops = graph.operators
    used = {*graph.inputs, *graph.outputs}
    used.update(i for op in ops for i in (*op.inputs, *op.outputs, *(op.intermediates or [])))
    used.discard(-1)  # an omitted optional input
    order = sorted(used)
    new = {old: k for k, old in enumerate(order)}
    graph.tensors = [graph.tensors[i] for i in order]

    def move(indices: list[int]) -> list[int]:
        return [new.get(i, -1) for i in indices]

    for op in ops:
        op.inputs, op.outputs = move(op.inputs), move(op.outputs)
        if op.intermediates:
            op.intermediates = move(op.intermediates)
    graph.inputs, graph.outputs = move(graph.inputs), move(graph.outputs)
    return new


def _compact_buffers(model: Any) -> None:
    """Drop buffers no tensor or metadata entry uses; buffer 0 stays the empty sentinel."""
    used = {0} | {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {m.buffer for m in model.metadata or []}
    keep = sorted(used)
    new = {old: i for i, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = new[entry.buffer]


def drop_metadata(model: Any, name: bytes) -> None:
    """Remove a metadata entry (its buffer goes at the next prune)."""
    model.metadata = [m for m in model.metadata or [] if m.name != name]


def add_tensor(
    model: Any,
    name: str,
    shape: Sequence[int],
    dtype: np.dtype,
    scale: Sequence[float],
    zero_point: Sequence[int],
    data: np.ndarray | None = None,
) -> int:
    """Append a (per-channel when len(scale) > 1) quantized tensor; constants get a buffer."""
    graph = model.subgraphs[0]
    buffer = 0
    if data is not None:
        blob = schema.BufferT()
        blob.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        model.buffers.append(blob)
        buffer = len(model.buffers) - 1
    quant = schema.QuantizationParametersT()
    quant.scale = [float(s) for s in scale]
    quant.zeroPoint = [int(z) for z in zero_point]
    quant.quantizedDimension = 0
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = [int(d) for d in shape]
    tensor.type = _TYPE_CODES[np.dtype(dtype)]
    tensor.buffer = buffer
    tensor.quantization = quant
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _opcode_index(model: Any, builtin: int, version: int) -> int:
    """Reuse the model's operator code entry for `builtin`, else add one."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(
        builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    )
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def add_op(
    model: Any,
    builtin: int,
    version: int,
    inputs: Sequence[int],
    outputs: Sequence[int],
    options: tuple[int, Any] | None = None,
) -> None:
    """Append an operator; `options` is (BuiltinOptions type, its options object)."""
    op = schema.OperatorT()
    op.opcodeIndex = _opcode_index(model, builtin, version)
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    if options is not None:
        op.builtinOptionsType, op.builtinOptions = options
    model.subgraphs[0].operators.append(op)
