"""Any image classifier works; anything else is refused before capture, in one line, exit 2.

The real models of ../shared/models: the MobileNet ladder and the iNaturalist bird model
classify correctly with their own input contract; segmentation, pose and junk are refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp.devices import Devices
from camapp.errors import ConfigError
from camapp.inference import backend, loader
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp
from tests.test_errors import one_line_error

BIRDS = SHARED_MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite"
BIRD_LABELS = SHARED_MODELS / "inat_bird_labels.txt"
IMAGENET_LABELS = SHARED_MODELS / "imagenet_labels.txt"


def classify(model: Path, photo: str, labels: Path | None = None) -> str:
    setup = loader.plan(str(model), str(labels) if labels else None)
    image = cv2.imread(str(SHARED_MEDIA / photo))
    return loader.load(setup).classify(image, bgr=True).top_k[0].label


def test_the_bird_model_names_birds() -> None:
    assert "Burrowing Owl" in classify(BIRDS, "owl.jpg", BIRD_LABELS)
    assert "Macaw" in classify(BIRDS, "parrot.jpg", BIRD_LABELS)


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("mobilenet_v1_0.25_128_quant.tflite", 128),
        ("mobilenet_v1_0.5_160_quant.tflite", 160),
        ("mobilenet_v1_0.75_192_quant.tflite", 192),
    ],
)
def test_the_mobilenet_v1_ladder_with_its_own_input_size(model: str, size: int) -> None:
    setup = loader.plan(str(SHARED_MODELS / model))
    assert (setup.mean, setup.std) == ((127.5,), (127.5,))  # read from the model's metadata
    classifier = loader.load(setup)
    assert classifier.size == (size, size)
    assert classify(SHARED_MODELS / model, "cat.bmp") == "Egyptian cat"


def test_normalisation_from_the_settings_wins_over_the_metadata() -> None:
    setup = loader.plan(str(BIRDS), str(BIRD_LABELS), mean=0.0, std=255.0)
    assert (setup.mean, setup.std) == ((0.0,), (255.0,))


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        ("deeplabv3_mnv2_pascal_quant.tflite", ["not an image classifier", "segmentation"]),
        ("movenet_single_pose_lightning_ptq.tflite", ["not an image classifier", "pose"]),
        ("model_invoking_error.tflite", ["not an image classifier"]),
    ],
)
def test_models_that_are_not_classifiers_are_refused_before_capture(
    broker, subscriber_factory, model_dir: Path, model: str, needles: list[str]
) -> None:
    sub = subscriber_factory(broker.port, ["#"])
    args = ["run", "--source", str(SHARED_MEDIA / "car-detection.mp4"),
            "--model", str(SHARED_MODELS / model), "--mqtt-port", str(broker.port)]  # fmt: skip
    line = one_line_error(run_camapp(args, model_dir), 2, *needles)
    assert "np." not in line and len(line) < 300
    assert not [m for m in sub.messages if m.topic.startswith(("camapp/", "homeassistant/"))]


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"TFL3" + bytes(100), b"\xff\xd8\xff"])
def test_junk_is_not_a_valid_tflite_model(model_dir: Path, tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(content)
    photo = str(SHARED_MEDIA / "cat.bmp")
    proc = run_camapp(["classify", "--model", str(junk), photo], model_dir)
    one_line_error(proc, 2, "not a valid TFLite model")


def test_labels_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="1001 labels for 965 classes"):
        loader.plan(str(BIRDS), str(IMAGENET_LABELS))
    shifted = tmp_path / "shifted.txt"  # one line too many, and not a background class
    shifted.write_text("hello\n" + BIRD_LABELS.read_text())
    with pytest.raises(ConfigError, match=r"966 labels for 965 classes.*not a background"):
        loader.plan(str(BIRDS), str(shifted))
    background = tmp_path / "background.txt"
    background.write_text("background\n" + BIRD_LABELS.read_text())
    setup = loader.plan(str(BIRDS), str(background))  # a background class first is fine
    assert setup.label_offset == 1


def test_a_model_that_fails_on_its_first_run_is_a_usage_error(tmp_path: Path) -> None:
    @backend.register("broken-on-invoke")
    class Broken:
        def __init__(self, path: Path, settings: backend.BackendSettings, devices: Devices) -> None:
            self.input = backend.InputSpec(4, 4, np.dtype(np.uint8), 1 / 127.5, 127)
            self.output = backend.OutputSpec(2)
            buffer, scores = np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 2), np.uint8)
            self.input_tensor, self.output_tensor = (lambda: buffer), (lambda: scores)

        def invoke(self) -> None:
            raise RuntimeError("Encountered unresolved custom op: fake-op-double")

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    setup = loader.plan(str(model), str(labels), backend="broken-on-invoke")
    with pytest.raises(ConfigError, match=r"fails on its first run: .*fake-op-double"):
        loader.load(setup)


def test_classify_json_reports_the_bird_model(model_dir: Path) -> None:
    args = ["classify", "--json", "--model", str(BIRDS), "--labels", str(BIRD_LABELS)]
    proc = run_camapp([*args, str(SHARED_MEDIA / "owl.jpg")], model_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Burrowing Owl" in json.loads(proc.stdout)["label"]


def test_a_labels_file_with_one_line_too_many_never_shifts_the_labels(
    model_dir: Path, tmp_path: Path
) -> None:
    """MobileNetV2's 1001 outputs with its 1001 labels plus one more line at the end: the
    "extra background line first" rule must not take it, or every label shifts by one
    (hot_dog.jpg was called "mashed potato"). The model's own labels start with background
    already, so the extra line is ambiguous: exit 2, naming both counts."""
    model = SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    labels = tmp_path / "labels.txt"
    labels.write_text(IMAGENET_LABELS.read_text().rstrip("\n") + "\nmy own extra line\n")
    with pytest.raises(ConfigError, match=r"1002 labels for 1001 classes .*'background' already"):
        loader.plan(str(model), str(labels))
    args = ["classify", "--model", str(model), "--labels", str(labels)]
    proc = run_camapp([*args, str(SHARED_MEDIA / "hot_dog.jpg")], model_dir)
    one_line_error(proc, 2, "1002 labels for 1001 classes")
    assert classify(model, "hot_dog.jpg", IMAGENET_LABELS) == "hotdog, hot dog, red hot"
