"""Full-integer post-training quantization of float TFLite classifiers, without TensorFlow.

LiteRT ships the calibrator that TensorFlow's converter drives (`CalibrationWrapper`): it runs
the float model on samples recording every activation's min and max, then rewrites the model
with int8 weights (per channel), int8 activations and `io_dtype` input and output.

Camera frames are mostly scenes the classifier is unsure of, so calibrating on them never shows
the large top logit of a confident prediction, and the logits' range would clip exactly the
frames that matter (the top classes tie at the clip). So between calibration and quantization
the top of the logits' range is raised by `logit_headroom`: the recorded ranges are edited in
the calibrated model, which a second wrapper, fed nothing, quantizes as recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from camapp.errors import ConfigError, first_line, shorten
from camapp.tflite import bundle, edit
from camapp.tflite.dequantize import dequantize_model
from camapp.tflite.modelfile import ModelFile, open_model, parse, write

__all__ = ["IO_TYPES", "dequantize_model", "quantize_model"]

IO_TYPES = {"uint8": np.uint8, "int8": np.int8}
# Top logit of confident frames over the largest seen calibrating on a clip's unsure ones:
# 1.4 on the shared clips (13.1 against 9.4).
DEFAULT_LOGIT_HEADROOM = 1.5
MAX_LOGIT_HEADROOM = 4.0


def _wrapper(data: bytes) -> Any:
    """A prepared CalibrationWrapper. It keeps pointers into `data`, which must outlive it."""
    from ai_edge_litert._pywrap_tensorflow_lite_calibration_wrapper import CalibrationWrapper

    try:
        wrapper = CalibrationWrapper(data, [], [])
        wrapper.Prepare()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot calibrate this model: {first_line(exc)}") from None
    return wrapper


def _as_input(sample: np.ndarray, shape: tuple[int, ...], number: int) -> np.ndarray:
    """One calibration sample as the input tensor, batch axis added if missing."""
    array = np.asarray(sample)
    if array.ndim == len(shape) - 1:
        array = array[np.newaxis]
    if array.shape != shape:
        raise ConfigError(
            f"calibration sample {number} has shape {array.shape}; the model takes {shape}"
        )
    if array.dtype.kind != "f":
        raise ConfigError(
            f"calibration sample {number} is {array.dtype}: give float arrays preprocessed "
            "to the model input"
        )
    return np.ascontiguousarray(array, np.float32)


def _calibrate(source: ModelFile, samples: Iterable[np.ndarray]) -> bytes:
    """The float model with each activation's min and max over `samples` recorded in it."""
    shape = source.info.inputs[0].shape
    data = bytes(source.data)  # the wrapper keeps pointers into it: it must outlive it
    wrapper = _wrapper(data)
    count = 0
    for sample in samples:  # one at a time: a generator of frames stays small
        count += 1
        try:
            wrapper.FeedTensor([_as_input(sample, shape, count)])
        except (ValueError, RuntimeError) as exc:
            reason = first_line(exc)
            raise ConfigError(f"calibration sample {count} failed: {reason}") from None
    if not count:
        raise ConfigError("no calibration samples: give at least one frame")
    return wrapper.Calibrate()


def _logit_tensors(graph: Any, codes: list[int]) -> list[int]:
    """The softmax inputs (else the graph outputs) and the reshapes feeding them, which the
    quantizer gives one range."""
    ops = schema.BuiltinOperator
    producers = {out: op for op in graph.operators for out in op.outputs}
    ends = [op.inputs[0] for op in graph.operators if codes[op.opcodeIndex] == ops.SOFTMAX]
    chain = []
    for index in ends or list(graph.outputs):
        while True:
            chain.append(index)
            producer = producers.get(index)
            if producer is None or codes[producer.opcodeIndex] not in (ops.RESHAPE, ops.SQUEEZE):
                break
            index = producer.inputs[0]
    return chain


def _widen_logits(calibrated: bytes, headroom: float, path: Path) -> bytes:
    """The calibrated model with the recorded max of its logits raised `headroom` times."""
    model = parse(bytearray(calibrated), path)
    codes = edit.builtin_codes(model)
    for graph in model.subgraphs:
        for index in _logit_tensors(graph, codes):
            q = graph.tensors[index].quantization
            if q is not None and q.max is not None and len(q.max) == 1 and q.max[0] > 0:
                q.max = [float(q.max[0]) * headroom]
    return edit.serialize(model)


def _quantize(calibrated: bytes, io_type: np.dtype, path: Path) -> bytes:
    """Quantize a model by the ranges recorded in it: a wrapper fed nothing keeps them."""
    wrapper = _wrapper(calibrated)
    try:
        return wrapper.QuantizeModel(
            io_type.num,  # input type
            io_type.num,  # output type
            False,  # allow_float: every op must be integer
            np.dtype(np.int8).num,  # activations
            np.dtype(np.int32).num,  # biases
            False,  # disable_per_channel
            False,  # disable_per_channel_quantization_for_dense_layers
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot quantize {path}: {first_line(exc)}") from None


def quantize_model(
    float_path: Path,
    samples: Iterable[np.ndarray],
    out_path: Path,
    io_dtype: str = "uint8",
    logit_headroom: float = DEFAULT_LOGIT_HEADROOM,
) -> None:
    """Write a full-integer copy of a float model, calibrated on `samples`.

    Weights are int8 per channel, activations int8, input and output `io_dtype`. Samples are
    float32 arrays already preprocessed to the model input; a few dozen frames like those the
    camera will see are enough. `logit_headroom` 1 is plain min/max calibration. Labels
    embedded in the model are carried over.
    """
    if io_dtype not in IO_TYPES:
        raise ConfigError(f"io_dtype must be one of {sorted(IO_TYPES)}, not {str(io_dtype)[:20]!r}")
    if not 1.0 <= logit_headroom <= MAX_LOGIT_HEADROOM:
        raise ConfigError(f"logit_headroom must be 1 to {MAX_LOGIT_HEADROOM}, not {logit_headroom}")
    source = open_model(float_path)
    if len(source.info.inputs) != 1:
        raise ConfigError(f"model {shorten(float_path)} has {len(source.info.inputs)} inputs")
    if source.quantized:
        raise ConfigError(f"model {float_path} is already quantized: give its float original")
    dtype = source.info.inputs[0].dtype
    if dtype != "float32":
        raise ConfigError(f"model {float_path} is not a float model: its input is {dtype}")
    calibrated = _widen_logits(_calibrate(source, samples), logit_headroom, source.path)
    quantized = _quantize(calibrated, np.dtype(IO_TYPES[io_dtype]), source.path)
    write(out_path, quantized, bundle.pack(source.bundle.members))
