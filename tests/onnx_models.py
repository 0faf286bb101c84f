"""ONNX versions of the shared uint8 MobileNetV2, made without TensorFlow (tests and benchmarks).

1. `tflite2onnx` converts `mobilenet_v2_1.0_224_quant.tflite` (per-tensor uint8; it refuses the
   per-channel int8 model) into a float NCHW graph with each quantized tensor as a
   QuantizeLinear/DequantizeLinear pair.
2. `float_model` removes those pairs: weights keep their quantized values (folded back into
   float), activations lose their fake quantization. The result is the TFLite network in float.
3. `quantize` runs onnxruntime's `quantize_static` on it (QDQ, int8 activations and per-channel
   int8 weights), calibrated on frames of the shared clips, preprocessed as camapp does.

The models carry `mean`/`std` metadata (the TFLite input is (pixel - 128) / 128), which the
ONNX backend reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from camapp.capture.opencv import FileSource
from camapp.inference.backend import InputSpec
from camapp.inference.preprocess import Preprocessor

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TFLITE = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
CLIPS = [
    SHARED / "media" / n
    for n in ("car-detection.mp4", "one-by-one-person-detection.mp4", "bigbuckbunny.mp4")
]
MEAN = STD = 128.0  # the TFLite input's quantization: scale 1/128, zero point 128
OPSET = 13


def convert(tflite: Path, out: Path) -> Path:
    """tflite2onnx's graph of a per-tensor quantized TFLite model (a QDQ float graph)."""
    import tflite2onnx

    tflite2onnx.convert(str(tflite), str(out))
    return out


def float_model(qdq: Path, out: Path) -> Path:
    """The QDQ graph with every QuantizeLinear→DequantizeLinear pair removed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq))
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    quant = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    rename: dict[str, str] = {}  # a DequantizeLinear's output -> the float tensor it stands for
    dropped = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in quant:
            continue
        q = quant[node.input[0]]
        source = q.input[0]
        if source in consts:  # a weight: keep the quantized values it had in TFLite
            value = numpy_helper.to_array(consts[source]).astype(np.float64)
            scale = float(numpy_helper.to_array(consts[q.input[1]]))
            zero = float(numpy_helper.to_array(consts[q.input[2]]))
            folded = (np.clip(np.round(value / scale) + zero, 0, 255) - zero) * scale
            consts[source].CopyFrom(numpy_helper.from_array(folded.astype(np.float32), source))
        rename[node.output[0]] = source
        dropped += [q, node]
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    for output in graph.output:
        if output.name in rename:  # the graph's output was a dequantized tensor: keep its name
            graph.node.append(
                onnx.helper.make_node("Identity", [rename[output.name]], [output.name])
            )
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    # Per-channel weights need DequantizeLinear's `axis`: opset 13.
    model = onnx.version_converter.convert_version(model, OPSET)
    _describe(model)
    onnx.save(model, str(out))
    return out


def calibration_frames(count: int, size: int = 224) -> Iterator[np.ndarray]:
    """`count` NCHW float frames spread evenly over the shared clips, preprocessed as camapp
    preprocesses frames for the model."""
    spec = InputSpec(size, size, np.dtype(np.float32), mean=(MEAN,), std=(STD,), layout="NCHW")
    prep = Preprocessor(spec)
    hwc = np.empty((size, size, 3), np.float32)
    per_clip = -(-count // len(CLIPS))
    for clip in CLIPS:
        capture = cv2.VideoCapture(str(clip))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        wanted = set(np.linspace(0, total - 1, per_clip).astype(int).tolist())
        source = FileSource(clip, realtime=False)
        try:
            while wanted and (frame := source.read()) is not None:
                if frame.seq in wanted:
                    wanted.discard(frame.seq)
                    prep(frame.image, frame.bgr, hwc)
                    yield hwc.transpose(2, 0, 1)[None].copy()
        finally:
            source.close()


def quantize(float_path: Path, out: Path, frames: int = 16) -> Path:
    """onnxruntime's static int8 quantization, calibrated on `frames` clip frames."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    name = onnx.load(str(float_path)).graph.input[0].name
    batches = iter([{name: f} for f in calibration_frames(frames)])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    quantize_static(
        str(float_path),
        str(out),
        Reader(),
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    model = onnx.load(str(out))
    _describe(model)
    onnx.save(model, str(out))
    return out


def mobilenet(directory: Path, calibration_frames: int = 16) -> dict[str, Path]:
    """The converted models in `directory`: {'qdq', 'float', 'int8'}."""
    qdq = convert(TFLITE, directory / "mobilenet_v2_qdq.onnx")
    flt = float_model(qdq, directory / "mobilenet_v2_float.onnx")
    int8 = quantize(flt, directory / "mobilenet_v2_int8.onnx", calibration_frames)
    return {"qdq": qdq, "float": flt, "int8": int8}


def _describe(model: object) -> None:
    """The input normalisation, where the ONNX backend looks for it."""
    props = {p.key: p for p in model.metadata_props}  # type: ignore[attr-defined]
    for key, value in (("mean", MEAN), ("std", STD)):
        if key in props:
            props[key].value = str(value)
        else:
            entry = model.metadata_props.add()  # type: ignore[attr-defined]
            entry.key, entry.value = key, str(value)
