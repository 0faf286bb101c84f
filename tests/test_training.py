"""Training on the device: cut, embed, fit, graft, report, distil, on real models and a real clip.

The clip is shared/media/one-by-one-person-detection.mp4 with its occupancy labels; frames are
subsampled (every 4th) and the one training run is shared by the session, so this stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp import models
from camapp.config.load import check
from camapp.datasets import save_frame, scan
from camapp.errors import ConfigError
from camapp.inference.backends.litert import interpreter_api
from camapp.inference.loader import load_file
from camapp.tflite.modelfile import open_model
from camapp.training import graft
from camapp.training.check import check_dataset, format_check, near_duplicate_groups
from camapp.training.clip import clip_frames, dataset_from_clip, frame_labels
from camapp.training.cut import cut_classifier
from camapp.training.distill import DistillSettings, distill
from camapp.training.embed import Job, extract, lower_priority
from camapp.training.frames import parse_roi, prepare
from camapp.training.head import Head
from camapp.training.train import TrainSettings, train
from tests.conftest import SHARED, SHARED_MEDIA, SHARED_MODELS, run_camapp

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"
BASE = SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
SMALL = SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
PHOTOS = ["cat.bmp", "chelsea.png", "coffee.png", "grace_hopper.bmp", "hot_dog.jpg", "owl.jpg"]
STRIDE = 4


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 4th labelled frame of 0-699, plus one broken file that must be skipped."""
    root = tmp_path_factory.mktemp("occupancy") / "dataset"
    dataset_from_clip(CLIP, RANGES, root, first=0, last=699, stride=STRIDE)
    (root / "person" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


@pytest.fixture(scope="session")
def trained(dataset: Path) -> tuple[Path, dict]:
    out = dataset.parent / "occupancy.tflite"
    stages: list[tuple[str, int, int]] = []
    settings = TrainSettings(base=str(BASE), crop="stretch", augment=1, threads=2)
    report = train(dataset, out, settings, progress=lambda *a: stages.append(a))
    report["stages"] = stages
    return out, report


def test_grafted_model_is_an_ordinary_tflite_with_labels(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    info = models.model_info(out)
    assert info["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert info["outputs"][0]["shape"] == [1, 2]
    assert info["outputs"][0]["dtype"] == "uint8"  # like the base's output
    assert models.read_labels(out) == ["empty", "person"]
    meta = open_model(out).record
    assert meta["crop"] == "stretch" and meta["roi"] is None and meta["base"] == BASE.name
    # The ImageNet classifier's 1001x1280 weights are gone, the new 2x1280 ones added.
    assert info["bytes"] < BASE.stat().st_size - 1001 * 1280 + 4096


def test_classify_command_runs_the_grafted_model(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = trained
    proc = run_camapp(["classify", "--model", str(out), str(SHARED_MEDIA / "cat.bmp")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(": ", 1)[1].split(" (")[0].strip("'") in {"empty", "person"}


def test_accuracy_on_unseen_people(trained: tuple[Path, dict]) -> None:
    """Frames 700-1393 show three people the model never saw; every 4th labelled frame."""
    out, _ = trained
    labels = frame_labels(RANGES)
    classifier = load_file(out, top_k=1)
    results = [
        classifier.classify(frame, True, "stretch").top_k[0].label == labels[i]
        for i, frame in clip_frames(CLIP, STRIDE, first=700)
        if i in labels
    ]
    assert len(results) > 150
    assert np.mean(results) >= 0.95


def test_report_numbers_and_files(trained: tuple[Path, dict]) -> None:
    out, report = trained
    broken = str(out.parent / "dataset" / "person" / "broken.jpg")
    assert report["images"]["unreadable"] == {broken: "corrupt JPEG header"}
    assert report["images"]["augmented"] == report["images"]["train"]
    assert report["val"]["accuracy"] >= 0.95 and report["train"]["accuracy"] >= 0.95
    assert report["int8_agreement"] >= 0.95
    val_loss = [h[1] for h in report["history"]]
    assert 1 <= report["kept_epoch"] <= report["epochs"]
    assert val_loss[report["kept_epoch"] - 1] <= min(val_loss) + 1e-5  # the weights kept
    confusion = np.array(report["val"]["confusion"])
    assert confusion.sum() == report["images"]["val"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(report["val"]["accuracy"])
    for wrong in report["wrong"]:
        assert Path(wrong["path"]).is_file() and wrong["true"] != wrong["predicted"]
    markdown = Path(report["report"]).read_text()
    assert "| empty |" in markdown and "validation accuracy (int8 model)" in markdown
    assert Path(report["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({Path(report['chart']).name})" in markdown
    assert report["stages"][-1][0] == "report"
    attempted = report["images"]["embedded"] + 2  # the broken image and its augmented copy
    assert ("embed", attempted, attempted) in report["stages"]


@pytest.mark.parametrize(
    ("base", "dim", "dtype"),
    [
        (BASE, 1280, np.int8),
        (SMALL, 256, np.uint8),
        (SHARED_MODELS / "mobilenet_v1_0.5_160_quant.tflite", 512, np.uint8),
        (SHARED_MODELS / "mobilenet_v1_0.75_192_quant.tflite", 768, np.uint8),
        (SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite", 1280, np.uint8),
        # Its head is a FULLY_CONNECTED op, not a 1x1 CONV_2D.
        (SHARED_MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite", 1280, np.uint8),
    ],
)
def test_cut_outputs_the_pooled_embedding(base: Path, dim: int, dtype: type) -> None:
    cut = cut_classifier(base)
    interpreter = interpreter_api()[0](model_content=cut.model)
    out = interpreter.get_output_details()
    assert len(out) == 1 and int(np.prod(out[0]["shape"])) == dim == cut.dim
    assert out[0]["dtype"] == dtype == cut.dtype


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("deeplabv3_mnv2_pascal_quant.tflite", "not a classifier"),
        ("movenet_single_pose_lightning_ptq.tflite", "not a classifier"),
        ("mobilenet_v2_1.0_224_quant_edgetpu.tflite", "edgetpu-custom-op"),
        ("LICENSE", "not a valid TFLite model"),
        ("missing.tflite", "not found"),
    ],
)
def test_cut_rejects_what_it_cannot_cut(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cut_classifier(SHARED_MODELS / name)


@pytest.mark.parametrize("base", [SMALL, BASE], ids=["uint8-embedding", "int8-embedding"])
def test_int8_head_matches_float_head(base: Path) -> None:
    """The grafted int8 ops reproduce the float head's probabilities on real embeddings, from
    a uint8 base (shifted to int8 first) and from an int8 one (the default base)."""
    cut = cut_classifier(base)
    frames = [cv2.imread(str(SHARED_MEDIA / p)) for p in PHOTOS]
    raw = extract(cut.model, [Job(f) for f in frames], len(frames)).raw
    x = cut.dequantize(raw)
    rng = np.random.default_rng(1)
    head = Head(rng.normal(0, 0.05, (3, cut.dim)).astype(np.float32), np.array([0.5, 0, -0.5]))
    q = graft.quantize_head(head, cut, x)
    assert q.weights.dtype == np.int8 and q.bias.dtype == np.int32
    np.testing.assert_allclose(graft.int8_scores(cut, q, raw), head.predict_proba(x), atol=0.03)


@pytest.mark.parametrize("base", [SMALL, BASE], ids=["uint8-embedding", "int8-embedding"])
def test_the_grafted_model_scores_photos_as_the_float_head(base: Path) -> None:
    """The whole grafted model (the cut base, then the int8 head, then its output), run by
    LiteRT on the photos, gives the float head's probabilities on the base's embeddings:
    the graft itself, not only the head on its own (test_int8_head_matches_float_head)."""
    cut = cut_classifier(base)
    frames = [cv2.imread(str(SHARED_MEDIA / p)) for p in PHOTOS]
    x = cut.dequantize(extract(cut.model, [Job(f) for f in frames], len(frames)).raw)
    rng = np.random.default_rng(2)
    head = Head(rng.normal(0, 0.05, (3, cut.dim)).astype(np.float32), np.array([0.5, 0, -0.5]))
    interp = interpreter_api()[0](
        model_content=graft.grafted_model(cut, graft.quantize_head(head, cut, x))
    )
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    size = int(inp["shape"][1])
    scale, zero = out["quantization"]
    for frame, expected in zip(frames, head.predict_proba(x), strict=True):
        interp.set_tensor(inp["index"], prepare(frame, size)[None])
        interp.invoke()
        scores = (interp.get_tensor(out["index"])[0].astype(np.float32) - zero) * scale
        np.testing.assert_allclose(scores, expected, atol=0.03)


def test_threads_give_the_same_embeddings_and_augmentation_changes_them() -> None:
    cut = cut_classifier(SMALL)
    frames = [cv2.imread(str(SHARED_MEDIA / p)) for p in PHOTOS]
    one = extract(cut.model, [Job(f) for f in frames], len(frames), threads=1).raw
    two = extract(cut.model, [Job(f) for f in frames], len(frames), threads=2).raw
    aug = extract(cut.model, [Job(f, seed=7) for f in frames], len(frames), threads=2).raw
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, aug)


def test_worker_priority_is_lowered_for_that_thread_only() -> None:
    seen: list[int] = []

    def work() -> None:
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        lower_priority(5)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - before)

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen and seen[0] > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


def _photo_dataset(root: Path, per_class: dict[str, int]) -> Path:
    """Real photos, each rotated and mirrored into distinct images."""
    variants = [
        cv2.rotate(cv2.imread(str(SHARED_MEDIA / p)), r)
        if r is not None
        else cv2.imread(str(SHARED_MEDIA / p))
        for p in PHOTOS
        for r in (None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ]
    k = 0
    for label, n in per_class.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(
                str(root / label / f"{i}.png"), cv2.resize(variants[k % len(variants)], (96, 96))
            )
            k += 1
    return root


def test_dataset_check_finds_every_problem(tmp_path: Path) -> None:
    root = _photo_dataset(tmp_path / "ds", {"cats": 12, "dogs": 3})
    shutil.copy(root / "cats" / "1.png", root / "dogs" / "copy-of-cat.png")  # a wrong label?
    again = cv2.imread(str(root / "cats" / "0.png"))
    cv2.imwrite(str(root / "cats" / "0-again.jpg"), again, [cv2.IMWRITE_JPEG_QUALITY, 80])
    (root / "cats" / "garbage.jpg").write_bytes(b"not an image")
    (root / "cats" / "empty.png").write_bytes(b"")
    (root / "cats" / "notes.txt").write_text("ignored")
    report = check_dataset(root)
    assert report.ok
    assert report.counts == {"cats": 13, "dogs": 4}
    assert sorted(Path(p).name for p in report.unreadable) == ["empty.png", "garbage.jpg"]
    assert [sorted(Path(p).name for p in g) for g in report.duplicates] == [
        ["0-again.jpg", "0.png"]
    ]
    assert [sorted(Path(p).name for p in g) for g in report.conflicts] == [
        ["1.png", "copy-of-cat.png"]
    ]
    text = format_check(report)
    assert "2 unreadable image(s) will be skipped" in text
    assert "class 'dogs' has 4 image(s): add at least 10" in text
    assert "imbalanced: 'cats' has 13 images, 'dogs' 4" in text
    assert "classes cats, dogs (a wrong label?)" in text
    assert "1 image(s) are near-copies" in text
    assert "keep one of each group: cats/0-again.jpg, cats/0.png" in text


def test_dataset_check_problems_and_a_clean_set(tmp_path: Path) -> None:
    one = _photo_dataset(tmp_path / "one", {"only": 11})
    report = check_dataset(one)
    assert not report.ok and "need at least 2 classes" in report.problems[0]
    clean = check_dataset(_photo_dataset(tmp_path / "clean", {"a": 10, "b": 10}))
    assert clean.ok and not clean.advice and "looks good" in format_check(clean)
    with pytest.raises(ConfigError, match="dataset not found"):
        check_dataset(tmp_path / "nowhere")


def test_near_duplicate_groups_chain_not_pairs() -> None:
    still = [0b1111 << 10] * 50 + [0b1] + [(1 << 64) - 1]
    groups = near_duplicate_groups(still)
    assert groups == [list(range(50))]


def test_save_frame_writes_jpeg_and_sidecar(tmp_path: Path) -> None:
    frame = cv2.imread(str(SHARED_MEDIA / "parrot.jpg"))
    sidecar = {"camera": "cam0", "crop": "center", "roi": [0.1, 0.2, 0.9, 1.0]}
    first = save_frame(tmp_path, "bird", frame, sidecar)
    second = save_frame(tmp_path, "bird", frame, sidecar)
    assert first != second and first.parent == tmp_path / "bird"
    assert cv2.imread(str(first)).shape == frame.shape
    meta = json.loads(first.with_suffix(".json").read_text())
    assert meta["camera"] == "cam0" and meta["roi"] == [0.1, 0.2, 0.9, 1.0] and meta["time"]
    assert [s.label for s in scan(tmp_path)] == ["bird", "bird"]
    with pytest.raises(ConfigError, match="invalid label"):
        save_frame(tmp_path, "../escape", frame, {})
    with pytest.raises(ConfigError, match="HxWx3 uint8"):
        save_frame(tmp_path, "bird", frame[:, :, 0], {})


def test_region_of_interest() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 255  # right half white
    assert prepare(frame, 32, "stretch", parse_roi("0.5,0,1,1")).min() == 255
    assert prepare(frame, 32, "stretch", parse_roi([0, 0, 0.5, 1])).max() == 0
    mirrored = prepare(frame, 32, "stretch", (0.5, 0, 1, 1), np.random.default_rng(0))
    assert mirrored.min() > 128  # augmentation (a mirror too) stays inside the region
    for bad in ("0.5,0.5,0.2,1", "1,2,3", "a,b,c,d", [0, 0, 1, 1.5]):
        with pytest.raises(ConfigError, match="region of interest"):
            parse_roi(bad)


def test_train_rejects_bad_input(tmp_path: Path) -> None:
    one = _photo_dataset(tmp_path / "one", {"only": 3})
    with pytest.raises(ConfigError, match="at least 2 class folders"):
        train(one, tmp_path / "m.tflite", TrainSettings(base=str(SMALL)))
    # Settings are checked as they are made, from their one declaration (config/training.py).
    for given, message in [
        ({"val_fraction": 1.5}, "^val_fraction: must be between 0 and 0.9"),
        ({"crop": "zoom"}, "^crop: must be one of center, stretch"),
        ({"roi": (0.5, 0, 0.2, 1)}, "^roi: must satisfy 0 <= x1 < x2 <= 1"),
        ({"augment": 11}, "^augment: must be between 0 and 10"),
        ({"head": {"patience": 0}}, "^head.patience: must be between 1 and 10000"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check(TrainSettings, {"base": str(SMALL), **given})
    two = _photo_dataset(tmp_path / "two", {"a": 3, "b": 3})
    for bad, message in [
        (
            TrainSettings(base=str(SHARED_MODELS / "deeplabv3_mnv2_pascal_quant.tflite")),
            "classifier",
        ),
        (TrainSettings(base="no-such-model"), "not found"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(two, tmp_path / "m.tflite", bad)
    assert not (tmp_path / "m.tflite").exists()


def test_small_base_and_separate_validation_folder(tmp_path: Path) -> None:
    """A uint8 MobileNetV1 base (QUANTIZE in front of the head) and a val dir."""
    _photo_dataset(tmp_path / "all", {"a": 10, "b": 10})
    val = tmp_path / "val"
    for label in ("a", "b"):
        (val / label).mkdir(parents=True)
        for i in range(3):
            shutil.move(tmp_path / "all" / label / f"{i}.png", val / label / f"{i}.png")
    out = tmp_path / "photos.tflite"
    report = train(tmp_path / "all", out, TrainSettings(base=str(SMALL), val_dir=val, augment=0))
    assert report["images"] == {
        "train": 14,
        "augmented": 0,
        "val": 6,
        "embedded": 20,
        "unreadable": {},
    }
    assert models.model_info(out)["inputs"][0]["shape"] == [1, 128, 128, 3]
    assert report["int8_agreement"] >= 5 / 6


def test_distill_occupancy_teacher_onto_small_base(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    """No labels: the trained occupancy model teaches MobileNetV1 0.25/128 on the clip."""
    teacher, _ = trained
    out = tmp_path / "student.tflite"
    settings = DistillSettings(stride=8, crop="stretch", min_share=0.05)
    report = distill(CLIP, out, str(teacher), str(SMALL), settings)
    assert report["classes"] == ["person", "empty"]  # both kept: no (other)
    assert report["agreement_before"] is None  # ImageNet has no 'empty' or 'person' to map
    assert report["agreement_after"] >= 0.85
    assert report["frames"]["train"] + report["frames"]["holdout"] == len(range(0, 1394, 8))
    assert models.read_labels(out) == report["classes"]
    assert models.model_info(out)["outputs"][0]["shape"] == [1, 2]
    assert "agreement with the teacher" in Path(report["report"]).read_text()


def test_no_validation_set(tmp_path: Path) -> None:
    """val_fraction 0: no validation numbers, agreement measured on the training images."""
    root = _photo_dataset(tmp_path / "ds", {"a": 4, "b": 4})
    settings = TrainSettings(base=str(SMALL), val_fraction=0, augment=0, threads=1)
    report = train(root, tmp_path / "m.tflite", settings)
    assert report["val"]["accuracy"] is None and report["val_float_accuracy"] is None
    assert report["agreement_on"] == 8 and report["train"]["accuracy"] == 1.0
    assert "validation accuracy (int8 model): n/a" in Path(report["report"]).read_text()


def test_a_trained_model_runs_on_the_view_it_learnt_unless_the_camera_says_otherwise(
    trained: tuple[Path, dict],
) -> None:
    from camapp.config.load import check
    from camapp.config.schema import CameraSettings
    from camapp.inference import loader

    out, _ = trained
    setup = loader.plan(str(out))
    assert (setup.crop, setup.roi) == ("stretch", None)
    camera = check(CameraSettings, {"model": str(out)})
    assert loader.view(camera, setup) == ("stretch", None)  # as trained
    own = check(CameraSettings, {"model": str(out), "crop": "center", "roi": "0,0.5,1,1"})
    assert loader.view(own, setup) == ("center", (0.0, 0.5, 1.0, 1.0))  # the camera's own
