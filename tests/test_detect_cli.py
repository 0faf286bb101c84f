"""`camapp detect` as a user runs it: the real command line on the real detectors, photos
and frames of the person clip; bad models, labels and images refused in one line, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest

from camapp.errors import EXIT_USAGE
from camapp.training.clip import clip_frames
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp
from tests.detect_helpers import CLIP, SSD, SSD_LABELS, YOLO, YOLO_LABELS

HOPPER = SHARED_MEDIA / "grace_hopper.bmp"
PEOPLE = {100: 1, 400: 1, 700: 0, 1000: 1, 1300: 1}


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The person clip's reference frames as PNG files."""
    folder = tmp_path_factory.mktemp("frames")
    paths = {}
    for i, frame in clip_frames(CLIP, last=max(PEOPLE)):
        if i in PEOPLE:
            paths[i] = folder / f"frame{i}.png"
            cv2.imwrite(str(paths[i]), frame)
    return paths


def detect(args: list[str], tmp_path: Path):
    return run_camapp(["detect", *args], tmp_path)


@pytest.mark.parametrize(("model", "score"), [(SSD, "0.4"), (YOLO, "0.3")])
def test_one_json_line_per_image(model: Path, score: str, frames, tmp_path: Path) -> None:
    images = [HOPPER, *frames.values()]
    proc = detect(["--json", "--model", str(model), "--min-score", score,
                   *map(str, images)], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["image"] for line in lines] == list(map(str, images))
    hopper = lines[0]
    assert hopper["objects"][0]["label"] == "person" and "tie" in hopper["counts"]
    x1, y1, x2, y2 = hopper["objects"][0]["box"]
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    for index, line in zip(PEOPLE, lines[1:], strict=True):
        assert line["counts"].get("person", 0) == PEOPLE[index], line
        assert sum(line["counts"].values()) == len(line["objects"])


def test_readable_lines_and_the_score_filter(frames, tmp_path: Path) -> None:
    proc = detect(["--model", str(YOLO), "--min-score", "0.3", str(HOPPER), str(frames[700])],
                  tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hopper, empty = proc.stdout.splitlines()
    assert hopper.startswith(f"{HOPPER}: 1 'person', 1 'tie': 'person' 0.9")
    assert empty == f"{frames[700]}: nothing found"
    high = detect(["--json", "--model", str(YOLO), "--min-score", "0.95", str(HOPPER)], tmp_path)
    assert json.loads(high.stdout)["objects"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", str(SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite")],
         "model outputs fit no detector family (.*); found: .* \\[1,1001\\] uint8"),
        (["--model", str(SHARED_MODELS / "deeplabv3_mnv2_pascal_quant.tflite")],
         "fit no detector family"),
        (["--model", str(YOLO), "--labels", str(SHARED_MODELS / "imagenet_labels.txt")],
         "imagenet_labels.txt has 1001 lines but the model has 80 classes"),
        (["--model", str(YOLO), "--labels", str(SSD_LABELS)],
         "has 91 lines but the model has 80 classes \\(expected 80, or 81 with \\?\\?\\? first\\)"),
        (["--model", str(YOLO), "--min-score", "0"], "--min-score: must be between 0.01 and 1"),
        (["--model", str(SSD), "--roi", "0.5,0,0.2,1"], "--roi"),
    ],
)  # fmt: skip
def test_bad_models_and_labels_exit_2_in_one_line(args, message: str, tmp_path: Path) -> None:
    proc = detect([*args, str(HOPPER)], tmp_path)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("camapp: error: ")
    assert re.search(message, line), line


def test_an_unreadable_image_is_refused_before_any_line(tmp_path: Path) -> None:
    bad = tmp_path / "video.png"
    bad.write_bytes(b"not an image")
    proc = detect(["--json", "--model", str(YOLO), str(HOPPER), str(bad)], tmp_path)
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    assert proc.stderr.startswith(f"camapp: error: cannot read image {bad}")


def test_labels_in_either_convention(tmp_path: Path) -> None:
    """YOLOv8n with the SSD's own 80 names as a label map (??? first): the same answers."""
    names = YOLO_LABELS.read_text().splitlines()
    label_map = tmp_path / "map.txt"
    label_map.write_text("\n".join(["???", *names]) + "\n")
    runs = [
        detect(["--json", "--model", str(YOLO), "--labels", str(path), str(HOPPER)], tmp_path)
        for path in (YOLO_LABELS, label_map)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr
    assert runs[0].stdout == runs[1].stdout
    assert json.loads(runs[0].stdout)["counts"] == {"person": 1, "tie": 1}


@pytest.mark.parametrize("command", [["classify"], ["run", "--backend", "edgetpu", "--source"]])
def test_classify_and_run_off_litert_send_a_detector_to_camapp_detect(
    command, tmp_path: Path
) -> None:
    proc = run_camapp([*command, str(HOPPER), "--model", str(YOLO)], tmp_path)
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    assert proc.stderr == (
        f"camapp: error: {YOLO} is not an image classifier: it is an object detection model "
        "(raw output 1x84x8400); run it with camapp detect\n"
    )


def test_help_names_the_default_detector(tmp_path: Path) -> None:
    """`camapp detect --help` said --model defaulted to mobilenet_v2_int8, a classifier it
    refuses; the default is the detector its description names."""
    proc = run_camapp(["detect", "--help"], tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--model MODEL detector file or known name (default: ssd_mobilenet_v1_coco)" in text
    assert "mobilenet_v2_int8" not in text
