"""`camapp dataset` and `camapp train` as a user runs them: frames in, a model out, one
line and exit 2 for what the user must fix."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from camapp.training import dataset_from_clip
from tests.conftest import SHARED, SHARED_MEDIA, run_camapp
from tests.test_errors import one_line_error

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
LABELS = SHARED / "datasets" / "one-by-one-person-occupancy.json"


def test_dataset_capture_saves_frames_with_their_sidecar(model_dir: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    args = ["dataset", "capture", str(dataset), "--source", str(CLIP), "--label", "empty",
            "--count", "3", "--every", "0", "--roi", "0,0.2,1,1"]  # fmt: skip
    proc = run_camapp(args, model_dir)
    assert proc.returncode == 0, proc.stderr
    images = sorted((dataset / "empty").glob("*.jpg"))
    assert len(images) == 3
    sidecar = json.loads(images[0].with_suffix(".json").read_text())
    assert sidecar["label"] == "empty" and sidecar["roi"] == [0.0, 0.2, 1.0, 1.0]
    assert sidecar["camera"] == CLIP.name and "time" in sidecar


def test_dataset_check_exits_2_for_a_dataset_that_cannot_train(
    model_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "ds"
    (dataset / "open").mkdir(parents=True)
    (dataset / "open" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    proc = run_camapp(["dataset", "check", str(dataset)], model_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "broken.jpg" in proc.stdout


def test_train_writes_a_model_that_run_and_classify_take_as_it_is(
    model_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "ds"
    dataset_from_clip(CLIP, LABELS, dataset, 0, 700, 10)
    out = tmp_path / "occupancy.tflite"
    proc = run_camapp(["train", str(dataset), "--out", str(out), "--crop", "stretch"],
                      model_dir, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "accuracy: train" in proc.stdout and (tmp_path / "occupancy.report.md").is_file()
    frame = tmp_path / "frame.png"
    capture = cv2.VideoCapture(str(CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 1000)  # a person, unseen in training
    cv2.imwrite(str(frame), capture.read()[1])
    proc = run_camapp(["classify", "--json", "--model", str(out), str(frame)], model_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "person"


def test_train_without_a_dataset_or_teacher_is_a_usage_error(model_dir: Path, tmp_path: Path):
    proc = run_camapp(["train", "--out", str(tmp_path / "m.tflite")], model_dir)
    one_line_error(proc, 2, "pass a DATASET")
    proc = run_camapp(["train", "--out", str(tmp_path / "m.tflite"), "--roi", "1,1,0,0"], model_dir)
    one_line_error(proc, 2, "--roi", "0 <= x1 < x2 <= 1")


def test_train_makes_the_out_folder_or_says_it_cannot_before_embedding(
    model_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "ds"
    dataset_from_clip(CLIP, LABELS, dataset, 0, 700, 50)
    (tmp_path / "a-file").write_text("")
    proc = run_camapp(["train", str(dataset), "--out", str(tmp_path / "a-file" / "m.tflite")],
                      model_dir, timeout=120)  # fmt: skip
    one_line_error(proc, 2, "a-file is not a folder")
    assert "embed" not in proc.stderr  # said before the minutes of embedding, not after
    out = tmp_path / "models" / "new" / "room.tflite"
    proc = run_camapp(["train", str(dataset), "--out", str(out)], model_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
