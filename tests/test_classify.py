"""The real int8 model on real photos gives the reference answers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.conftest import SHARED_MEDIA, make_classifier, run_camapp

CATS = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("grace_hopper.bmp", {"military uniform"}),
        ("cat.bmp", CATS),
        ("chelsea.png", CATS),
        ("coffee.png", {"espresso"}),
        ("parrot.jpg", {"macaw"}),
        ("hot_dog.jpg", {"hotdog, hot dog, red hot"}),
    ],
)
def test_reference_photos(
    model_path: Path, labels: list[str], photo: str, expected: set[str]
) -> None:
    classifier = make_classifier(model_path, labels, top_k=3)
    image = cv2.imread(str(SHARED_MEDIA / photo))
    result = classifier.classify(image, bgr=True)
    assert result.top_k[0].label in expected
    assert 0.0 < result.top_k[2].score <= result.top_k[1].score <= result.top_k[0].score <= 1.0
    assert result.inference_ms > 0


def test_rgb_and_bgr_input_agree(model_path: Path, labels: list[str]) -> None:
    classifier = make_classifier(model_path, labels)
    bgr = cv2.imread(str(SHARED_MEDIA / "parrot.jpg"))
    from_bgr = classifier.classify(bgr, bgr=True).top_k
    from_rgb = classifier.classify(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), bgr=False).top_k
    assert from_bgr == from_rgb


def test_both_manifest_models_agree_on_coffee(model_dir: Path, labels: list[str]) -> None:
    from camapp import models
    from tests.conftest import SHARED_MODELS

    uint8 = models.fetch("mobilenet_v2_quant", model_dir, mirror=SHARED_MODELS)
    image = cv2.imread(str(SHARED_MEDIA / "coffee.png"))
    assert make_classifier(uint8, labels).classify(image, bgr=True).top_k[0].label == "espresso"


def test_classify_command_json(model_dir: Path) -> None:
    photos = [str(SHARED_MEDIA / "grace_hopper.bmp"), str(SHARED_MEDIA / "coffee.png")]
    proc = run_camapp(["classify", "--json", "--top-k", "3", *photos], model_dir)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["image"] for r in lines] == photos
    assert [r["label"] for r in lines] == ["military uniform", "espresso"]
    for record in lines:
        assert len(record["top_k"]) == 3
        assert record["top_k"][0] == {k: record[k] for k in ("label", "class_id", "score")}


def test_the_journal_gets_camapps_lines_not_litert_noise(model_dir: Path) -> None:
    photo = str(SHARED_MEDIA / "cat.bmp")
    proc = run_camapp(["classify", photo], model_dir)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    debug = run_camapp(["--debug", "classify", photo], model_dir)
    assert "Created TensorFlow Lite XNNPACK delegate" in debug.stderr  # all of it when asked


@pytest.mark.parametrize(
    ("model", "photo", "expected"),
    [
        ("tf2_mobilenet_v2_1.0_224_ptq.tflite", "kite_and_cold.jpg", "seashore"),
        ("tf2_mobilenet_v2_1.0_224_ptq.tflite", "missvickie_potato_chips.bmp", "packet"),
        ("mobilenet_v2_1.0_224_inat_bird_quant.tflite", "owl.jpg", "Athene cunicularia"),
        ("mobilenet_v2_1.0_224_inat_bird_quant.tflite", "parrot.jpg", "Ara macao"),
        ("mobilenet_v1_0.25_128_quant.tflite", "cat.bmp", "Egyptian cat"),
        ("mobilenet_v1_0.25_128_quant.tflite", "grace_hopper.bmp", "academic gown"),
        ("mobilenet_v1_0.5_160_quant.tflite", "cat.bmp", "Egyptian cat"),
        ("mobilenet_v1_0.5_160_quant.tflite", "grace_hopper.bmp", "academic gown"),
    ],
)
def test_the_shared_readmes_other_answers(model: str, photo: str, expected: str) -> None:
    """../shared/README.md's reference answers: crops shrunk by whole factors 1 to 4, then
    bilinear to 128, 160 and 224 (camapp/resize.py keeps x86 OpenCV's bytes, on which they
    were recorded)."""
    from tests.conftest import SHARED_MODELS

    classifier = make_classifier(SHARED_MODELS / model, top_k=1)
    image = cv2.imread(str(SHARED_MEDIA / photo))
    assert classifier.classify(image, bgr=True).top_k[0].label.startswith(expected)
