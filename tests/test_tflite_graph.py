"""camapp.tflite.graph against the real models in ../shared/models (no interpreter, no mocks).

MAC and parameter counts are checked against the figures published with the models
(tensorflow/models research/slim: MobileNetV1 table; mobilenet/README.md: MobileNetV2
1.0 224 = 300M MACs, 3.47M parameters). Models the shared set lacks (an embedding, a
detector, a model with its own metadata) are made by editing a copy of a real one with
LiteRT's flatbuffer_utils, so the whole read path runs on each.
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from camapp.errors import ConfigError
from camapp.models import read_labels
from camapp.tflite.graph import ClassifierSpec, GraphInfo, Kind, kind
from camapp.tflite.modelfile import open_model


def describe(path: Path) -> GraphInfo:
    return open_model(path).info


def check_classifier(path: Path, labels: list[str] | None = None) -> ClassifierSpec:
    return open_model(path).classifier(labels)


def read_model(path: Path) -> schema.ModelT:
    """A private copy of the model's objects, to edit."""
    return open_model(path).editable()


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
V2_QUANT = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
V2_INT8 = MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
V1_025 = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
BIRD = MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
EDGETPU = MODELS / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
INVOKING_ERROR = MODELS / "model_invoking_error.tflite"
IMAGENET_LABELS = MODELS / "imagenet_labels.txt"
BIRD_LABELS = MODELS / "inat_bird_labels.txt"


def _near(measured: int | None, published: float, tolerance: float) -> bool:
    return measured is not None and abs(measured - published) <= tolerance * published


def _write(model: schema.ModelT, path: Path) -> Path:
    flatbuffer_utils.write_model(model, str(path))
    return path


def _op_index(model: schema.ModelT, name: str) -> int:
    graph = model.subgraphs[0]
    return next(
        i
        for i, op in enumerate(graph.operators)
        if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == name
    )


@pytest.mark.parametrize("path", [V2_QUANT, V2_INT8], ids=["uint8", "int8"])
def test_mobilenet_v2_is_a_classifier_of_published_size(path: Path) -> None:
    info = describe(path)
    assert kind(info)[0] is Kind.CLASSIFIER
    assert _near(info.macs, 300e6, 0.03), info.macs
    assert _near(info.params, 3.47e6, 0.03), info.params
    assert not info.edgetpu and "DEPTHWISE_CONV_2D" in info.op_types
    spec = check_classifier(path)
    assert (spec.input_size, spec.layout, spec.channels, spec.dtype) == (
        (224, 224),
        "NHWC",
        3,
        "uint8",
    )
    assert spec.classes == 1001 and spec.label_offset == 0
    assert len(info.labels) == 1001 and info.labels[0] == "background"
    (output,) = info.outputs
    assert output.shape == (1, 1001) and output.producer == "SOFTMAX"
    assert output.scale == (1 / 256,) and output.zero_point == (0,)


def test_input_quantization_is_each_models_own() -> None:
    uint8, int8 = check_classifier(V2_QUANT), check_classifier(V2_INT8)
    assert uint8.quantization == (1 / 128, 128)
    assert int8.quantization is not None
    assert int8.quantization[0] == pytest.approx(1 / 127.5) and int8.quantization[1] == 127
    assert "QUANTIZE" in describe(V2_INT8).op_types  # the int8 body behind a uint8 input
    assert not describe(V2_INT8).inputs[0].per_channel


@pytest.mark.parametrize(
    ("name", "size", "mmacs", "mparams"),
    [
        ("mobilenet_v1_0.25_128_quant.tflite", 128, 14, 0.47),
        ("mobilenet_v1_0.5_160_quant.tflite", 160, 77, 1.34),
        ("mobilenet_v1_0.75_192_quant.tflite", 192, 233, 2.59),
    ],
)
def test_mobilenet_v1_ladder_matches_published_figures(
    name: str, size: int, mmacs: float, mparams: float
) -> None:
    info = describe(MODELS / name)
    # Published figures are rounded to whole MMACs; 5 % covers that and the 0.75's 239M.
    assert _near(info.macs, mmacs * 1e6, 0.05), info.macs
    assert _near(info.params, mparams * 1e6, 0.03), info.params
    spec = check_classifier(MODELS / name)
    assert spec.input_size == (size, size) and spec.classes == 1001


def test_macs_and_params_follow_the_documented_formula(tmp_path: Path) -> None:
    """Cutting MobileNetV1 0.25 after its pooling layer removes exactly the 1x1 logits conv:
    256 inputs x 1001 classes MACs, and its 256 x 1001 weights plus 1001 biases."""
    model = read_model(V1_025)
    graph = model.subgraphs[0]
    pool = _op_index(model, "AVERAGE_POOL_2D")
    graph.outputs = [graph.operators[pool].outputs[0]]
    graph.operators = graph.operators[: pool + 1]
    cut = describe(_write(model, tmp_path / "features.tflite"))
    full = describe(V1_025)
    assert full.macs is not None and cut.macs is not None
    assert full.params is not None and cut.params is not None
    assert full.macs - cut.macs == 256 * 1001
    assert full.params - cut.params == 256 * 1001 + 1001
    assert kind(cut) == (
        Kind.EMBEDDING,
        "feature embedding model (output 1x1x1x256 from AVERAGE_POOL_2D, no classification layer)",
    )
    with pytest.raises(ConfigError, match="not an image classifier: it looks like a feature"):
        check_classifier(tmp_path / "features.tflite")


def test_weights_expanded_by_dequantize_still_count(tmp_path: Path) -> None:
    """Float16-style storage: the first conv reads its weights through a DEQUANTIZE op."""
    model = read_model(V1_025)
    graph = model.subgraphs[0]
    conv = graph.operators[_op_index(model, "CONV_2D")]
    stored = conv.inputs[1]
    expanded = schema.TensorT()
    expanded.shape, expanded.type, expanded.buffer = graph.tensors[stored].shape, 0, 0
    graph.tensors.append(expanded)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    model.operatorCodes.append(code)
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex = len(model.operatorCodes) - 1
    dequantize.inputs, dequantize.outputs = [stored], [len(graph.tensors) - 1]
    conv.inputs = [conv.inputs[0], len(graph.tensors) - 1, conv.inputs[2]]
    graph.operators.insert(0, dequantize)
    edited = describe(_write(model, tmp_path / "dequantized.tflite"))
    original = describe(V1_025)
    assert "DEQUANTIZE" in edited.op_types
    assert (edited.params, edited.macs) == (original.params, original.macs)


def test_unknown_output_shape_gives_no_mac_count(tmp_path: Path) -> None:
    model = read_model(V1_025)
    graph = model.subgraphs[0]
    graph.tensors[graph.operators[_op_index(model, "CONV_2D")].outputs[0]].shape = []
    info = describe(_write(model, tmp_path / "dynamic.tflite"))
    assert info.macs is None and info.params == describe(V1_025).params


def test_bird_model_takes_its_own_labels_not_imagenets() -> None:
    birds = read_labels(BIRD, BIRD_LABELS)
    assert len(birds) == 965
    spec = check_classifier(BIRD, birds)
    assert (spec.classes, spec.label_offset) == (965, 0)
    with pytest.raises(ConfigError) as caught:
        check_classifier(BIRD, read_labels(BIRD, IMAGENET_LABELS))
    message = str(caught.value)
    assert "1001 labels for 965 classes" in message
    assert "np." not in message and "\n" not in message


@pytest.mark.parametrize("first", ["background", "???", "Unknown"])
def test_one_extra_background_label_first_is_accepted(first: str) -> None:
    labels = [first, *read_labels(BIRD, BIRD_LABELS)]
    assert check_classifier(BIRD, labels).label_offset == 1


def test_one_extra_label_that_is_not_background_is_refused() -> None:
    labels = ["Aix sponsa (Wood Duck)", *read_labels(BIRD, BIRD_LABELS)]
    with pytest.raises(ConfigError, match=r"966 labels for 965 classes .*not a background class"):
        check_classifier(BIRD, labels)


def test_deeplab_is_a_segmenter() -> None:
    info = describe(DEEPLAB)
    assert kind(info)[0] is Kind.SEGMENTER
    assert info.inputs[0].shape == (1, 513, 513, 3) and info.outputs[0].dtype == "int64"
    with pytest.raises(ConfigError) as caught:
        check_classifier(DEEPLAB)
    assert str(caught.value) == (
        f"{DEEPLAB} is not an image classifier: it looks like a semantic segmentation model "
        "(output 1x513x513 per pixel)"
    )


def test_movenet_is_a_pose_model_with_an_unquantized_uint8_input() -> None:
    info = describe(MOVENET)
    assert kind(info) == (Kind.POSE, "pose estimation model (output 1x1x17x3: keypoints)")
    (image,) = info.inputs
    assert image.dtype == "uint8" and not image.quantized and image.scale == ()
    with pytest.raises(ConfigError, match="it looks like a pose estimation model"):
        check_classifier(MOVENET)


def test_model_invoking_error_parses_and_is_no_image_model() -> None:
    info = describe(INVOKING_ERROR)
    assert info.op_types == ("fake-op-double",)
    assert info.inputs[0].shape == (1, 3) and info.outputs[0].shape == ()
    assert (info.params, info.macs) == (0, 0)
    assert kind(info)[0] is Kind.OTHER
    with pytest.raises(ConfigError, match=r"is not an image classifier: its input \(1x3\) is not"):
        check_classifier(INVOKING_ERROR)


def test_edgetpu_build_is_flagged_and_its_cost_unknown() -> None:
    info = describe(EDGETPU)
    assert info.edgetpu and info.op_types == ("edgetpu-custom-op",)
    assert info.params is None and info.macs is None
    assert kind(info)[0] is Kind.CLASSIFIER
    assert check_classifier(EDGETPU, read_labels(EDGETPU, IMAGENET_LABELS)).classes == 1001


def test_detectors_are_recognised(tmp_path: Path) -> None:
    model = read_model(V1_025)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = b"TFLite_Detection_PostProcess"
    model.operatorCodes.append(code)
    model.subgraphs[0].operators[-1].opcodeIndex = len(model.operatorCodes) - 1
    info = describe(_write(model, tmp_path / "ssd.tflite"))
    assert kind(info) == (Kind.DETECTOR, "object detection model (TFLite_Detection_PostProcess op)")
    out = info.outputs[0]
    four = tuple(
        dataclasses.replace(out, shape=shape) for shape in [(1, 10, 4), (1, 10), (1, 10), (1,)]
    )
    assert kind(dataclasses.replace(describe(V1_025), outputs=four))[0] is Kind.DETECTOR


def test_nchw_input_layout(tmp_path: Path) -> None:
    model = read_model(V1_025)
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = [1, 3, 128, 128]
    spec = check_classifier(_write(model, tmp_path / "nchw.tflite"))
    assert (spec.layout, spec.input_size, spec.channels) == ("NCHW", (128, 128), 3)


def test_metadata_normalisation_of_the_shared_models() -> None:
    """The shared CPU image classifiers carry tflite-support metadata with mean = std = 127.5
    naming their embedded labels file; no model of another kind (or the Edge TPU build)
    declares a normalisation, so camapp must not invent one for them."""
    with_metadata = []
    for path in sorted(MODELS.glob("*.tflite")):
        info = describe(path)
        if kind(info)[0] is not Kind.CLASSIFIER or info.edgetpu:
            assert info.mean is None, path.name
            continue
        with_metadata.append(path.name)
        assert (info.mean, info.std) == ((127.5,), (127.5,)), path.name
        with zipfile.ZipFile(path) as bundle:  # the named file is the one embedded
            assert list(info.label_files) == bundle.namelist()
    assert len(with_metadata) == 6, with_metadata


def test_the_shared_models_kinds() -> None:
    """Each shared model's kind, judged from its graph alone (the README of shared/)."""
    kinds = {path.name: kind(describe(path))[0] for path in MODELS.glob("*.tflite")}
    detectors = {
        "ssd_mobilenet_v1_coco_quant_detect.tflite",
        "yolov8n_coco_full_integer_quant.tflite",
    }
    assert {n for n, k in kinds.items() if k is Kind.DETECTOR} == detectors
    assert kinds[DEEPLAB.name] is Kind.SEGMENTER
    assert kinds[MOVENET.name] is Kind.POSE
    assert kinds[EDGETPU.name] is Kind.CLASSIFIER


def test_raw_detector_output_is_no_classifier(tmp_path: Path) -> None:
    """YOLO's one raw [1, 84, 8400] output (and its transpose) is a detector, not a vector
    of class scores; a square map of the same rank is not."""
    for shape, expected in [
        ((1, 84, 8400), Kind.DETECTOR),
        ((1, 8400, 84), Kind.DETECTOR),
        ((1, 6, 2100), Kind.DETECTOR),
        ((1, 84, 84), Kind.OTHER),
        ((1, 1, 1001), Kind.CLASSIFIER),
    ]:
        info = describe(V1_025)
        out = dataclasses.replace(info.outputs[0], shape=shape, producer="CONV_2D")
        assert kind(dataclasses.replace(info, outputs=(out,)))[0] is expected, shape
    with pytest.raises(ConfigError, match=r"not an image classifier.*detection"):
        check_classifier(MODELS / "yolov8n_coco_full_integer_quant.tflite")


def _metadata(mean: list[float], std: list[float], label_file: str) -> bytes:
    """A ModelMetadata flatbuffer, fields numbered as in tflite-support metadata_schema.fbs."""
    b = flatbuffers.Builder(256)

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for value in reversed(values):
            b.PrependFloat32(value)
        return b.EndVector()

    def tables(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    def table(fields: int, **slots: int) -> int:
        b.StartObject(fields)
        for slot, offset in slots.items():
            b.PrependUOffsetTRelativeSlot(int(slot[1:]), offset, 0)
        return b.EndObject()

    normalization = table(2, f0=floats(mean), f1=floats(std))
    b.StartObject(2)  # ProcessUnit: options_type 1 = NormalizationOptions, then options
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, normalization, 0)
    unit = b.EndObject()
    name = b.CreateString(label_file)
    b.StartObject(4)  # AssociatedFile: name, type 2 = TENSOR_AXIS_LABELS
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependInt8Slot(2, 2, 0)
    file = b.EndObject()
    image = table(7, f4=tables([unit]))  # TensorMetadata.process_units
    scores = table(7, f6=tables([file]))  # TensorMetadata.associated_files
    subgraph = table(7, f2=tables([image]), f3=tables([scores]))
    b.Finish(table(8, f3=tables([subgraph])), file_identifier=b"M001")
    return bytes(b.Output())


def _with_metadata(data: bytes, path: Path) -> Path:
    model = read_model(V1_025)
    entry = next(m for m in model.metadata if m.name == b"TFLITE_METADATA")
    model.buffers[entry.buffer].data = np.frombuffer(data, np.uint8)
    return _write(model, path)


def test_metadata_normalisation_per_channel(tmp_path: Path) -> None:
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    path = _with_metadata(_metadata(mean, std, "coco_labels.txt"), tmp_path / "meta.tflite")
    info = describe(path)
    assert info.mean == pytest.approx(mean) and info.std == pytest.approx(std)
    assert info.label_files == ("coco_labels.txt",)
    spec = check_classifier(path)
    assert spec.mean == info.mean and spec.std == info.std


def test_normalisation_that_fits_no_channel_count_is_refused(tmp_path: Path) -> None:
    path = _with_metadata(_metadata([1.0, 2.0], [3.0, 4.0], "x.txt"), tmp_path / "two.tflite")
    with pytest.raises(ConfigError, match="2 normalisation mean values for 3 channels"):
        check_classifier(path)


def test_bad_metadata_is_an_error_and_other_versions_are_skipped(tmp_path: Path) -> None:
    good = _metadata([127.5], [127.5], "labels.txt")
    zero_std = _metadata([127.5], [0.0], "labels.txt")
    with pytest.raises(ConfigError, match=r"corrupt TFLITE_METADATA: bad normalisation"):
        describe(_with_metadata(zero_std, tmp_path / "zero.tflite"))
    truncated = good[: len(good) // 2]
    with pytest.raises(ConfigError, match=r"\(corrupt TFLITE_METADATA: .* runs past the end"):
        describe(_with_metadata(truncated, tmp_path / "cut.tflite"))
    future = good[:4] + b"M002" + good[8:]
    assert describe(_with_metadata(future, tmp_path / "m002.tflite")).mean is None


def test_read_model_gives_a_modelt_that_writes_back(tmp_path: Path) -> None:
    model = read_model(V2_INT8)
    assert isinstance(model, schema.ModelT)
    again = describe(_write(model, tmp_path / "again.tflite"))
    original = describe(V2_INT8)
    assert dataclasses.replace(again, path=original.path, labels=original.labels) == original


def test_the_model_read_survives_its_file_being_rewritten(tmp_path: Path) -> None:
    """Quantizing in place writes over the file read: the ModelT must not depend on it.
    (LiteRT's own flatbuffer_utils.read_model maps the file: this dies of SIGBUS there.)"""
    path = tmp_path / "in_place.tflite"
    path.write_bytes(V1_025.read_bytes())
    model = read_model(path)
    path.write_bytes(b"")
    conv = model.subgraphs[0].operators[_op_index(model, "CONV_2D")]
    buffer = model.subgraphs[0].tensors[conv.inputs[1]].buffer
    model.buffers[buffer].data[:8] = 7  # and editable
    _write(model, path)
    assert list(read_model(path).buffers[buffer].data[:9]) == [7] * 8 + [
        read_model(V1_025).buffers[buffer].data[8]
    ]


def test_a_file_larger_than_a_flatbuffer_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.tflite"
    with path.open("wb") as sparse:
        sparse.write(V1_025.read_bytes()[:8])
        sparse.truncate(2**31 + 8)  # sparse: no disk, and never read
    with pytest.raises(ConfigError, match=r"\(2147483656 bytes, more than a flatbuffer can"):
        describe(path)
    # A file a flatbuffer could address, but far over any model a Pi runs: refused before it
    # is read (a `set {"model": ...}` naming a 1.9 GB file read it whole on MQTT's thread).
    with path.open("r+b") as sparse:
        sparse.truncate(1900 << 20)
    with pytest.raises(ConfigError, match=r"\(1992294400 bytes, over the 512 MiB bound\)"):
        describe(path)


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr("labels.txt", "cat\ndog\n")
    return out.getvalue()


BAD_FILES = {
    "empty": (lambda: b"", "(empty file)"),
    "tiny": (lambda: b"TFL3\x00", "(only 5 bytes)"),
    "random": (lambda: random.Random(7).randbytes(4096), "(no TFL3 identifier)"),
    "jpeg": (lambda: (SHARED / "media" / "parrot.jpg").read_bytes(), "a JPEG image)"),
    "zip": (_zip_bytes, "(no TFL3 identifier: a ZIP archive)"),
    "truncated": (lambda: V1_025.read_bytes()[:300_000], "(corrupt or truncated: "),
    "header only": (lambda: V2_QUANT.read_bytes()[:64], "(corrupt or truncated: "),
    "identifier only": (lambda: b"\x10\x00\x00\x00TFL3" + bytes(8), "(corrupt or truncated: "),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_one_line_config_errors(case: str, tmp_path: Path) -> None:
    make, why = BAD_FILES[case]
    path = tmp_path / "model.tflite"
    path.write_bytes(make())
    for call in (read_model, describe, check_classifier):
        with pytest.raises(ConfigError) as caught:
            call(path)
        message = str(caught.value)
        assert message.startswith(f"not a valid TFLite model: {path} (")
        assert why in message and "\n" not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^model file not found: .*missing.tflite$"):
        describe(tmp_path / "missing.tflite")
    with pytest.raises(ConfigError, match=r"\(not a regular file\)$"):
        describe(tmp_path)


def test_long_paths_are_shortened_in_messages(tmp_path: Path) -> None:
    path = tmp_path / ("d" * 200) / ("m" * 200 + ".tflite")
    with pytest.raises(ConfigError) as caught:
        describe(path)
    assert len(str(caught.value)) < 160 and "…" in str(caught.value)


def _patched(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def _subgraphs_vector(data: bytes) -> int:
    """Byte position of the root Model's subgraphs vector (field 2)."""
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    field = root + struct.unpack_from("<H", data, vtable + 4 + 2 * 2)[0]
    return field + struct.unpack_from("<I", data, field)[0]


def test_a_huge_vector_length_fails_fast(tmp_path: Path) -> None:
    data = V1_025.read_bytes()
    path = tmp_path / "huge.tflite"
    path.write_bytes(_patched(data, _subgraphs_vector(data), 0x7FFFFFFF))
    with pytest.raises(ConfigError, match="corrupt or truncated: vector of 2147483647 items"):
        describe(path)


def test_vectors_aliasing_one_table_cannot_multiply_work(tmp_path: Path) -> None:
    """20,000 subgraphs that are all one subgraph of 20,000 tensors that are all one tensor:
    a 160 kB file the plain parser would expand into 400 million objects."""
    b = flatbuffers.Builder(1024)
    name = b.CreateString("t")
    schema.TensorStart(b)
    schema.TensorAddName(b, name)
    tensor = b.EndObject()
    b.StartVector(4, 20_000, 4)
    for _ in range(20_000):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    schema.SubGraphStart(b)
    schema.SubGraphAddTensors(b, tensors)
    subgraph = schema.SubGraphEnd(b)
    b.StartVector(4, 20_000, 4)
    for _ in range(20_000):
        b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    schema.ModelStart(b)
    schema.ModelAddSubgraphs(b, subgraphs)
    b.Finish(schema.ModelEnd(b), file_identifier=b"TFL3")
    path = tmp_path / "bomb.tflite"
    path.write_bytes(b.Output())
    with pytest.raises(ConfigError, match="more tables than"):
        read_model(path)


@pytest.mark.parametrize("source", [INVOKING_ERROR, V1_025], ids=["small", "mobilenet"])
def test_random_corruption_never_escapes_as_a_traceback(source: Path, tmp_path: Path) -> None:
    """Seeded byte and word overwrites in the flatbuffer's tables (not its weights)."""
    rng = random.Random(source.name)
    original = source.read_bytes()
    path = tmp_path / "fuzzed.tflite"
    outcomes = set()
    for _ in range(60):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(min(len(data), 16_000) - 4)
            data[at : at + 4] = rng.randbytes(4)
        path.write_bytes(data)
        try:
            spec = check_classifier(path)
            outcomes.add(type(spec))
        except ConfigError as exc:
            assert "\n" not in str(exc)
            outcomes.add(ConfigError)
    assert ConfigError in outcomes  # the corruption did hit the parser
    assert outcomes <= {ConfigError, ClassifierSpec}


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.tflite")), ids=lambda p: p.stem)
def test_tensors_agree_with_the_litert_interpreter(path: Path) -> None:
    """LiteRT's own reading of each shared model (built, never allocated nor run)."""
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    info = describe(path)
    for ours, theirs in [
        *zip(info.inputs, interpreter.get_input_details(), strict=True),
        *zip(info.outputs, interpreter.get_output_details(), strict=True),
    ]:
        assert ours.shape == tuple(int(d) for d in theirs["shape"])
        assert ours.dtype == np.dtype(theirs["dtype"]).name
        scale, zero_point = theirs["quantization"]
        assert (ours.scale[:1] or (0.0,)) == (pytest.approx(scale),)
        assert (ours.zero_point[:1] or (0,)) == (zero_point,)


def test_a_model_is_read_once_per_load(tmp_path: Path) -> None:
    """Planning and loading a camera's model opens its file once in camapp (open_model: graph,
    metadata, labels, record, content hash); the interpreter maps it on its own. It was four
    times: the graph, the labels, the record and the loader's checks each read it again. A
    camera's plan, which first tells a detector from a classifier, reads it once too."""
    script = tmp_path / "count.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from camapp.inference import loader\n"
        "model = Path(sys.argv[1]).resolve()\n"
        "opens = []\n"
        "def hook(event, args):\n"
        "    if event == 'open' and isinstance(args[0], (str, Path)):\n"
        "        if Path(args[0]).resolve() == model:\n"
        "            opens.append(args[0])\n"
        "sys.addaudithook(hook)\n"
        "loader.load(loader.plan(str(model)))\n"
        "print(len(opens))\n"
        "from camapp.config.schema import CameraSettings\n"
        "opens.clear()\n"
        "loader.load_any(loader.plan_camera(CameraSettings(model=str(model))))\n"
        "print(len(opens))\n"
    )
    for model in (V1_025, BIRD):
        done = subprocess.run(
            [sys.executable, str(script), str(model)], capture_output=True, text=True, check=True
        )
        assert done.stdout.split() == ["1", "1"], (model.name, done.stdout, done.stderr[-300:])
