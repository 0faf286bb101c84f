"""ONNX Runtime as a backend: the shared MobileNetV2 converted without TensorFlow (tflite2onnx,
then onnxruntime's static int8 quantization; tests/onnx_models.py), against LiteRT on the same
network, plus small ONNX graphs built here for each input contract and error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from camapp import cli
from camapp.errors import ConfigError
from camapp.inference import loader
from tests import onnx_models
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, make_classifier, run_camapp

LABELS = SHARED_MODELS / "imagenet_labels.txt"
PHOTOS = sorted(p for p in SHARED_MEDIA.iterdir() if p.suffix in (".jpg", ".png", ".bmp"))


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared uint8 MobileNetV2 as ONNX: float, and int8 calibrated on 16 clip frames."""
    return onnx_models.mobilenet(tmp_path_factory.mktemp("onnx"), calibration_frames=16)


def answers(model: Path, backend: str | None = None) -> list[tuple[str, float]]:
    if backend == "litert":
        classifier = make_classifier(model, LABELS.read_text().splitlines())
    else:
        classifier = loader.load(loader.plan(str(model), str(LABELS)))
    results = [classifier.classify(cv2.imread(str(p)), bgr=True).top_k[0] for p in PHOTOS]
    return [(r.label, r.score) for r in results]


def test_the_converted_network_answers_as_litert_does(converted) -> None:
    setup = loader.plan(str(converted["float"]), str(LABELS))
    assert setup.backend == "onnx"  # chosen by the file's kind
    spec = loader.load(setup).backend.input
    assert (spec.layout, spec.dtype, spec.mean, spec.std) == (
        "NCHW",
        np.float32,
        (128.0,),
        (128.0,),
    )
    litert = answers(onnx_models.TFLITE, "litert")
    onnx_float = answers(converted["float"])
    same = [a[0] == b[0] for a, b in zip(litert, onnx_float, strict=True)]
    assert sum(same) >= len(PHOTOS) - 1, list(zip(litert, onnx_float, strict=True))
    for (_, a), (_, b), agree in zip(litert, onnx_float, same, strict=True):
        assert not agree or abs(a - b) < 0.05  # the same weights: near-equal confidence


def test_the_int8_model_is_quantized_and_keeps_the_clear_answers(converted) -> None:
    graph = onnx.load(str(converted["int8"])).graph
    weights = [t for t in graph.initializer if t.data_type == TensorProto.INT8]
    assert len(weights) >= 52  # every convolution's weights in int8 (per channel)
    assert converted["int8"].stat().st_size < converted["float"].stat().st_size / 3
    litert = dict(zip(PHOTOS, answers(onnx_models.TFLITE, "litert"), strict=True))
    int8 = dict(zip(PHOTOS, answers(converted["int8"]), strict=True))
    clear = [p for p, (_, score) in litert.items() if score > 0.9]
    assert len(clear) >= 3
    for photo in clear:
        assert int8[photo][0] == litert[photo][0], photo.name


def test_camapp_run_classifies_a_clip_with_onnx_runtime(converted, model_dir, broker) -> None:
    from tests.mqtt_helpers import Subscriber

    sub = Subscriber(broker.port, ["camapp/cam0/classification"])
    try:
        proc = run_camapp(
            ["run", "--source", str(SHARED_MEDIA / "car-detection.mp4"), "--no-realtime",
             "--model", str(converted["int8"]), "--labels", str(LABELS), "--workers", "2",
             "--max-frames", "12", "--mqtt-port", str(broker.port)], model_dir,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        sub.wait_for(lambda: len(sub.on("camapp/cam0/classification")) == 12)
        messages = [json.loads(m.payload) for m in sub.on("camapp/cam0/classification")]
    finally:
        sub.close()
    assert [m["frame"] for m in messages] == list(range(12))
    assert all(m["model"] == "mobilenet_v2_int8" and m["inference_ms"] > 0 for m in messages)


# Small graphs for each input contract: the score of a class is the mean of its channel.


def colour_model(path: Path, layout: str, dtype: str, out_dtype: str = "float") -> Path:
    """(1, 3) scores = each channel's mean of what the model sees, (pixel - 0) / 255; 8-bit
    tensors are quantized with scale 1/255 (input) and 1/256 (output)."""
    shape = [1, 8, 8, 3] if layout == "NHWC" else ["batch", 3, 8, 8]
    elem = {"float": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
    nodes, inits, x = [], [], "x"
    if dtype != "float":  # the model sees (q - zero) * scale: here (pixel - 0) / 255
        zero = 0 if dtype == "uint8" else -128
        inits += [helper.make_tensor("in_scale", TensorProto.FLOAT, [], [1 / 255]),
                  helper.make_tensor("in_zero", elem[dtype], [], [zero])]  # fmt: skip
        nodes.append(helper.make_node("DequantizeLinear", ["x", "in_scale", "in_zero"], ["xf"]))
        x = "xf"
    axes = [1, 2] if layout == "NHWC" else [2, 3]
    nodes.append(helper.make_node("ReduceMean", [x], ["mean"], axes=axes, keepdims=0))
    out = "mean"
    if out_dtype != "float":
        inits += [helper.make_tensor("out_scale", TensorProto.FLOAT, [], [1 / 256]),
                  helper.make_tensor("out_zero", TensorProto.UINT8, [], [0])]  # fmt: skip
        nodes.append(helper.make_node("QuantizeLinear", ["mean", "out_scale", "out_zero"], ["q"]))
        out = "q"
    graph = helper.make_graph(
        nodes, "colour", [helper.make_tensor_value_info("x", elem[dtype], shape)],
        [helper.make_tensor_value_info(out, elem[out_dtype], ["batch", 3])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    # The normalisation the model was trained with: it sees (pixel - 0) / 255.
    model.metadata_props.add(key="mean", value="0")
    model.metadata_props.add(key="std", value="255")
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("layout", "dtype", "out_dtype", "score"),
    [
        ("NHWC", "float", "float", 0.8627),  # 220 / 255
        ("NCHW", "float", "float", 0.8627),
        ("NCHW", "uint8", "float", 0.8627),  # quantization from the DequantizeLinear
        ("NHWC", "int8", "float", 0.8627),
        ("NCHW", "float", "uint8", 0.8633),  # 221 / 256: from the output's QuantizeLinear
    ],
)
def test_every_input_contract_reaches_the_model_right(
    tmp_path, capsys, layout, dtype, out_dtype, score
) -> None:
    model = colour_model(tmp_path / "colour.onnx", layout, dtype, out_dtype)
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    for channel, name in ((2, "red"), (1, "green"), (0, "blue")):  # OpenCV's BGR order
        image = np.zeros((40, 60, 3), np.uint8)
        image[..., channel] = 220
        photo = tmp_path / f"{name}.png"
        cv2.imwrite(str(photo), image)
        args = ["classify", "--model", str(model), "--labels", str(labels), "--json", str(photo)]
        assert cli.main(args) == 0
        top = json.loads(capsys.readouterr().out.splitlines()[0])["top_k"][0]
        assert (top["label"], top["score"]) == (name, score), (layout, dtype)


def not_a_classifier(path: Path) -> Path:
    """A segmentation-shaped graph: an image in, a (1, 21, 8, 8) map out."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [21, 3, 1, 1], [0.1] * 63)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "seg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 21, 8, 8])], [weight],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_models_it_cannot_use_are_one_line_config_errors(tmp_path, monkeypatch) -> None:
    labels = str(LABELS)
    with pytest.raises(ConfigError, match=r"is not an image classifier: output \[1, 21, 8, 8\]"):
        loader.load(loader.plan(str(not_a_classifier(tmp_path / "seg.onnx")), labels))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf" * 10)
    with pytest.raises(ConfigError, match=r"cannot load model .*garbage.onnx: .*"):
        loader.load(loader.plan(str(garbage), labels))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"onnxruntime is not installed: pip install"):
        loader.load(loader.plan(str(garbage), labels))
