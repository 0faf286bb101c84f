"""`camapp dataset` and `camapp train` as a user runs them: frames in, a model out, one
line and exit 2 for what the user must fix."""

from __future__ import annotations

import io
import json
import resource
from pathlib import Path

import cv2
import pytest

from camapp.cli.progress import Bar
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


def test_a_frame_that_cannot_be_written_leaves_no_part_of_it(
    model_dir: Path, tmp_path: Path
) -> None:
    """A write that fails halfway (here the file size limit, as a full disk would) is one
    line, exit 2, and leaves nothing behind: a cut-off JPEG is a broken image in the dataset
    and had no sidecar."""
    dataset = tmp_path / "ds"
    args = ["dataset", "capture", str(dataset), "--source", str(CLIP), "--label", "empty",
            "--count", "3", "--every", "0"]  # fmt: skip

    def small_files() -> None:  # Python ignores SIGXFSZ: the write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = run_camapp(args, model_dir, preexec_fn=small_files)
    one_line_error(proc, 2, "cannot save frame", "File too large")
    assert list((dataset / "empty").iterdir()) == []


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


def test_dataset_capture_takes_a_range_of_a_video_in_its_own_time(
    model_dir: Path, tmp_path: Path
) -> None:
    """Frames 100 to 299 (30 s at 10 fps), 2 s of the video apart; --end stops it short."""
    args = ["dataset", "capture", str(tmp_path / "ds"), "--source", str(CLIP), "--label", "a",
            "--count", "50", "--every", "2", "--start", "100", "--end", "30s"]  # fmt: skip
    proc = run_camapp(args, model_dir)
    assert proc.returncode == 0, proc.stderr
    sidecars = sorted((tmp_path / "ds" / "a").glob("*.json"))
    assert [json.loads(p.read_text())["frame"] for p in sidecars] == list(range(100, 300, 20))
    assert "--end (frame 300) was reached: saved 10 of the 50 frames asked" in proc.stderr
    assert "dataset: [####....................] 10/50 saving a" in proc.stderr  # no terminal


def test_dataset_capture_reads_a_whole_clip_fast_and_says_it_ended(
    model_dir: Path, tmp_path: Path
) -> None:
    """139 s of video, read whole within the 60 s run_camapp allows (it was paced at 10 fps)."""
    args = ["dataset", "capture", str(tmp_path / "ds"), "--source", str(CLIP), "--label", "a",
            "--count", "100", "--every", "10"]  # fmt: skip
    proc = run_camapp(args, model_dir, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "ds" / "a").glob("*.jpg"))) == 14  # frames 0, 100, ... 1300
    assert "the video ended: saved 14 of the 100 frames asked" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--start", "ten"], "--start: a frame number (300) or seconds (12.5s), not 'ten'"),
        (["--end", "-3"], "--end: a frame number"),
        (["--start", "10s", "--end", "50"], "--end (frame 50) must come after --start (frame 100)"),
    ],
)
def test_dataset_capture_range_errors_are_one_line(
    model_dir: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    args = ["dataset", "capture", str(tmp_path), "--source", str(CLIP), "--label", "a", *flags]
    one_line_error(run_camapp(args, model_dir), 2, message)
    assert not (tmp_path / "a").exists()


def test_progress_in_a_log_shows_the_stage_now_and_then_and_where_it_stopped() -> None:
    log, now = io.StringIO(), [0.0]
    bar = Bar("x", log, width=4, clock=lambda: now[0])
    for done in range(1, 8):
        now[0] = 3.0 * (done - 1)
        bar("saving", done, 10)
    bar.close()
    assert log.getvalue().splitlines() == [
        "x: [....] 1/10 saving",  # the stage starts, at 0 s
        "x: [##..] 5/10 saving",  # 12 s: the first call 10 s or more later
        "x: [##..] 7/10 saving",  # on close: where it stopped, short of 10
    ]


def test_class_folders_that_cannot_be_a_label_are_refused(model_dir: Path, tmp_path: Path) -> None:
    """A folder name with a newline trained (exit 0) a model of 2 classes with 3 labels that
    nothing could load; a non-UTF-8 one ended in an internal UnicodeEncodeError, both after
    every image was embedded. Refused at once now, and by the dataset check."""
    image = cv2.imread(str(SHARED_MEDIA / "cat.bmp"))
    pngs = [cv2.imencode(".png", image[n:])[1].tobytes() for n in range(2)]
    for name in ("ca\nt", b"\xff\xfe".decode("utf-8", "surrogateescape")):
        dataset = tmp_path / str(len(name))
        for label in ("bird", name):
            (dataset / label).mkdir(parents=True)
            for n, png in enumerate(pngs):
                (dataset / label / f"{n}.png").write_bytes(png)
        out = tmp_path / "out.tflite"
        proc = run_camapp(["train", str(dataset), "--out", str(out)], model_dir)
        one_line_error(proc, 2, "class folder", "one line of printable UTF-8 text")
        assert not out.exists()
        proc = run_camapp(["dataset", "check", str(dataset)], model_dir, errors="replace")
        assert proc.returncode == 2 and "one line of printable UTF-8 text" in proc.stdout


def test_an_empty_validation_dataset_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """--val-dir with no images trained and reported validation 'n/a', exit 0."""
    dataset, empty = tmp_path / "ds", tmp_path / "val"
    (empty / "bird").mkdir(parents=True)
    for label in ("bird", "cat"):
        (dataset / label).mkdir(parents=True)
        (dataset / label / "a.bmp").write_bytes((SHARED_MEDIA / "cat.bmp").read_bytes())
    args = ["train", str(dataset), "--val-dir", str(empty), "--out", str(tmp_path / "m.tflite")]
    one_line_error(run_camapp(args, model_dir), 2, "validation dataset", "has no images")


def test_a_teacher_that_is_no_cpu_image_classifier_is_refused_at_once(
    model_dir: Path, tmp_path: Path
) -> None:
    """A corrupt teacher and an Edge TPU build were internal errors (the latter on two
    lines); a detector or segmentation model was refused only after running the whole clip."""
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(bytes(range(256)) * 16)
    edgetpu = tmp_path / "edgetpu.tflite"
    edgetpu.write_bytes(
        (SHARED / "models" / "mobilenet_v2_1.0_224_quant_edgetpu.tflite").read_bytes()
    )
    teachers = {
        garbage: "not a valid TFLite model",
        edgetpu: "compiled for the Edge TPU",
        SHARED / "models" / "ssd_mobilenet_v1_coco_quant_detect.tflite": "not an image classifier",
        SHARED / "models" / "deeplabv3_mnv2_pascal_quant.tflite": "not an image classifier",
    }
    small = SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    for teacher, why in teachers.items():
        args = ["train", "--teacher", str(teacher), "--frames", str(CLIP), "--base", str(small)]
        proc = run_camapp([*args, "--out", str(tmp_path / "out.tflite")], model_dir, timeout=20)
        one_line_error(proc, 2, why)


def test_distillation_frames_that_are_no_video_are_named_so(model_dir: Path, tmp_path: Path):
    """A missing clip said "cannot tell the length of video": the frames' reader now opens a
    video as every other does (capture.opencv.open_video), and says what is wrong."""
    small = SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    for frames, why in ((tmp_path / "none.mp4", "video file not found"),
                        (tmp_path, "video file is not a regular file")):  # fmt: skip
        args = ["train", "--teacher", "mobilenet_v2_int8", "--frames", str(frames), "--base",
                str(small), "--out", str(tmp_path / "out.tflite")]  # fmt: skip
        one_line_error(run_camapp(args, model_dir, timeout=30), 2, why)
