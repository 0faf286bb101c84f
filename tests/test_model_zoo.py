"""The model zoo's commands on the real models of ../shared/models and the real photos and
clips: `model fetch --all`, `model list`, `model compare`, `model quantize`, `model dequantize`.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp import models
from camapp.cli.progress import Bar
from camapp.errors import ConfigError
from camapp.inference import loader
from camapp.models import measured
from camapp.tflite.modelfile import open_model
from camapp.tools import compare as zoo
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp

CLIP = SHARED_MEDIA / "car-detection.mp4"
SMALL = ("mobilenet_v1_0.25_128", "mobilenet_v2_int8", "mobilenet_v2_inat_bird")
# Photos with the class the README gives as the int8 model's answer, and the bird model's.
LABELLED = {
    "Egyptian cat": "chelsea.png",
    "hotdog": "hot_dog.jpg",
    "espresso": "coffee.png",
    "macaw": "parrot.jpg",
    "Burrowing_Owl": "owl.jpg",  # `_` for a space, as a folder may name it
}


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with three models of the zoo, fetched from the CI mirror."""
    directory = tmp_path_factory.mktemp("zoo")
    for name in SMALL:
        models.fetch(name, directory, mirror=SHARED_MODELS)
    return directory


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder per class, holding links to the shared photos (never copies)."""
    root = tmp_path_factory.mktemp("dataset")
    for label, photo in LABELLED.items():
        (root / label).mkdir()
        (root / label / photo).symlink_to(SHARED_MEDIA / photo)
    return root


@pytest.fixture(scope="session")
def data(dataset: Path) -> zoo.Data:
    return zoo.load_data(datasets=[dataset], videos=[CLIP], per_video=6, cover=224)


def test_fetch_all_then_list(tmp_path: Path) -> None:
    proc = run_camapp(["model", "fetch", "--all", "--mirror", str(SHARED_MODELS)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = models.load_manifest()
    assert proc.stdout.split() == [str(tmp_path / s.file) for s in manifest.values()]
    labels = {s.labels.file for s in manifest.values() if s.labels}
    assert labels == {
        "inat_bird_labels.txt", "imagenet_labels.txt", "ssd_mobilenet_v1_coco_labelmap.txt",
        "yolov8n_coco_labels.txt",
    }  # fmt: skip
    assert {p.name for p in tmp_path.iterdir()} == {s.file for s in manifest.values()} | labels
    listed = run_camapp(["model", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1 : 1 + len(manifest)]}
    assert set(rows) == set(manifest)
    assert re.search(r"classifier\s+160x160\s+imagenet\s+3\s+Apache-2.0\s+1\.33\s+fetched"
                     r"\s+— \(camapp model compare\)", rows["mobilenet_v1_0.5_160"])  # fmt: skip
    assert re.search(r"224x224\s+inat-birds\s+—\s+Apache-2.0\s+3\.41\s+fetched",
                     rows["mobilenet_v2_inat_bird"])  # fmt: skip
    assert re.search(r"detector\s+640x640\s+coco\s+1\s+AGPL-3.0\s+3\.14\s+fetched",
                     rows["yolov8n_coco"])  # fmt: skip
    assert re.search(
        r"detector\s+300x300\s+coco\s+2\s+Apache-2.0.*fetched\s+— \(camapp model compare\)$",
        rows["ssd_mobilenet_v1_coco"],
    )


def test_fetch_several_names_or_all_but_not_both(tmp_path: Path) -> None:
    names = ["mobilenet_v1_0.25_128", "mobilenet_v1_0.5_160"]
    proc = run_camapp(["model", "fetch", *names, "--mirror", str(SHARED_MODELS)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = [models.load_manifest()[n].file for n in names]
    assert proc.stdout.split() == [str(tmp_path / f) for f in files]
    proc = run_camapp(["model", "fetch", names[0], "--all"], tmp_path)
    assert proc.returncode == 2 and "give model names or --all, not both" in proc.stderr


def test_list_shows_what_is_not_fetched_and_what_was_measured(tmp_path: Path) -> None:
    models.fetch("mobilenet_v1_0.25_128", tmp_path, mirror=SHARED_MODELS)
    sha = models.load_manifest()["mobilenet_v1_0.25_128"].sha256
    found = measured.Measurement("mobilenet_v1_0.25_128", {1: 0.25, 2: 0.18}, 900.0, 2, "now")
    assert measured.record(tmp_path, {sha: found}) == tmp_path / measured.FILE_NAME
    proc = run_camapp(["model", "list"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:8]}
    assert re.search(r"fetched\s+0\.25 ms \(2 threads: 0\.18 ms\)$", lines["mobilenet_v1_0.25_128"])
    assert lines["mobilenet_v2_int8"].endswith("not fetched  — (camapp model compare)")


def test_measurements_round_trip_and_bad_files_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = measured.Measurement("a", {1: 12.5, 2: 7.25}, 80.0, 2, "2026-01-01T00:00:00+00:00")
    two = measured.Measurement("b", {1: 3.0, 2: 3.5}, 300.0, 2, "2026-01-02T00:00:00+00:00")
    measured.record(tmp_path, {"aa": one})
    measured.record(tmp_path, {"bb": two})  # added beside, not over
    assert measured.read(tmp_path) == {"aa": one, "bb": two}
    assert one.brief() == "12.50 ms (2 threads: 7.25 ms)" and two.brief() == "3.00 ms"
    assert [p.name for p in tmp_path.iterdir()] == [measured.FILE_NAME]  # no temporary left
    path = tmp_path / measured.FILE_NAME
    for bad in ("{not json", '{"aa": {"name": "a"}}', "[1, 2]", '{"aa": {"latency_ms": {}}}'):
        path.write_text(bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert measured.read(tmp_path) == {}
        assert "ignoring measurements" in caplog.text
    path.write_bytes(b" " * (measured.MAX_BYTES + 1))
    assert measured.read(tmp_path) == {}
    measured.record(tmp_path, {"bb": two})  # a bad file is replaced, not a failure
    assert measured.read(tmp_path) == {"bb": two}
    assert measured.record(path / "not-a-dir", {"bb": two}) is None


def test_label_names_a_class_folder_may_use() -> None:
    assert zoo._names("hotdog, hot dog, red hot") == {
        "hotdog, hot dog, red hot",
        "hotdog",
        "hot dog",
        "red hot",
    }
    assert zoo._names("Athene cunicularia (Burrowing Owl)") >= {
        "athene cunicularia",
        "burrowing owl",
    }
    assert zoo._key("Burrowing_Owl") == "burrowing owl"


def test_replay_gives_every_frame_then_loops_for_the_time_asked() -> None:
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    replay = zoo._Replay(frames, seconds=0.0)
    got = []
    while (frame := replay.read()) is not None:
        got.append(int(frame.image[0, 0, 0]))
    assert got == [0, 1, 2]
    replay = zoo._Replay(frames, seconds=0.05)
    count = 0
    while replay.read() is not None:
        count += 1
    assert count > 3


def test_compare_measures_and_scores_each_model(zoo_dir: Path, data: zoo.Data) -> None:
    paths = [zoo_dir / models.load_manifest()[name].file for name in SMALL]
    plan = zoo.Plan(threads=(1, 2), workers=2, seconds=0.1, repeats=3)
    steps: list[tuple[str, int, int]] = []
    rows = zoo.compare(paths[:1] + paths[2:], paths[1], data, plan, lambda *s: steps.append(s))
    assert [r.name for r in rows] == ["mobilenet_v2_int8", "mobilenet_v1_0.25_128",
                                      "mobilenet_v2_inat_bird"]  # fmt: skip
    assert [s[1] for s in steps] == list(range(10)) and steps[-1] == ("done", 9, 9)
    assert data.summary == "5 labelled images, 6 video frames"
    assert all(min(f.shape[:2]) == 224 for f in data.frames)  # shrunk as read, never below
    for row in rows:
        # The pipeline's first pass gives each frame the label a lone classifier gives it.
        classifier = loader.load_file(row.path, top_k=1)
        best = [classifier.classify(f).top_k[0] for f in data.frames]
        assert (row.top1, row.scores) == ([b.label for b in best], [b.score for b in best])
        info = open_model(row.path).info
        assert (row.params, row.macs) == (info.params, info.macs)
        assert row.bytes == row.path.stat().st_size
        assert set(row.latency_ms) == {1, 2} and min(row.latency_ms.values()) > 0
        assert row.per_s > 0 and row.workers == 2
    top, small, bird = rows
    assert top.agreement == 1.0 and bird.agreement is None
    same = sum(a == b for a, b in zip(small.top1, top.top1, strict=True))
    assert small.agreement == same / len(data.frames)
    sure = [i for i, score in enumerate(top.scores) if score >= zoo.SURE]
    assert (top.sure, top.sure_agreement) == (len(sure), 1.0) and 0 < len(sure) < len(top.scores)
    kept = sum(small.top1[i] == top.top1[i] for i in sure)
    assert (small.sure, small.sure_agreement) == (len(sure), kept / len(sure))
    assert (bird.sure, bird.sure_agreement) == (0, None)
    assert top.input_size == (224, 224) and small.input_size == (128, 128)
    # The README's answers: the int8 model knows the four ImageNet photos, the bird model
    # the owl; neither is scored on a class it lacks.
    assert (top.accuracy, top.scored) == (1.0, 4)
    assert (bird.accuracy, bird.scored) == (1.0, 1)
    assert small.scored == 4 and small.accuracy is not None
    table = zoo.markdown(rows, data)
    assert "| mobilenet_v2_int8 | imagenet | 224x224 | 3.88 | 3.49 | 300.78 |" in table
    assert f"| reference | 100.0% of {len(sure)} | 100.0% of 4 |" in table
    assert "| — | — | 100.0% of 1 |" in table
    chart = zoo.chart(rows, zoo_dir.parent / "compare.png")
    assert chart is not None and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = zoo.remember(rows, zoo_dir)
    assert kept is not None
    stored = measured.read(zoo_dir)
    assert {m.name for m in stored.values()} == set(SMALL)
    assert stored[models.load_manifest()["mobilenet_v2_int8"].sha256].per_s == round(top.per_s, 2)


def test_compare_command(zoo_dir: Path, dataset: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    args = ["model", "compare", "mobilenet_v1_0.25_128", "--reference", "mobilenet_v2_int8",
            "--dataset", str(dataset), "--video", str(CLIP), "--frames", "3", "--seconds", "0.1",
            "--chart", str(chart)]  # fmt: skip
    proc = run_camapp(args, zoo_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| model | label set | input | MiB | params M | MACs M | p50 ms 1")
    assert lines[2].startswith("| mobilenet_v2_int8 |")
    assert re.search(r"\| reference \| 100\.0% of \d+ \| 100\.0% of 4 \|$", lines[2])
    assert lines[3].startswith("| mobilenet_v1_0.25_128 | imagenet | 128x128 | 0.50 | 0.47 |")
    assert "On 5 labelled images, 3 video frames" in proc.stdout
    bar = [line for line in proc.stderr.splitlines() if line.startswith("camapp model compare: [")]
    assert bar[-1].endswith("done") and "mobilenet_v1_0.25_128: pipeline" in proc.stderr
    assert chart.read_bytes()[:4] == b"\x89PNG"
    listed = run_camapp(["model", "list"], zoo_dir).stdout
    assert re.search(r"mobilenet_v1_0\.25_128 .* fetched\s+\d+\.\d\d ms", listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mobilenet_v2_int8"], "nothing to compare on: give --images DIR"),
        (["mobilenet_v2_int8", "--images", "/nonexistent"], "--images: not a directory"),
        (["mobilenet_v2_int8", "--video", "/nonexistent.mp4"], "--video: file not found"),
        (["mobilenet_v2_int8", "--video", str(CLIP), "--frames", "0"], "--frames must be 1 to"),
        (["mobilenet_v2_int8", "--video", str(CLIP), "--seconds", "0"], "--seconds must be"),
        (["mobilenet_v1_0.5_160", "--video", str(CLIP)], "run: camapp model fetch"),
        (["mobilenet_v2_int8", "--dataset", str(SHARED_MEDIA)], "no images in class folders"),
        # An internal ValueError from matplotlib, after every measurement had run.
        (
            ["mobilenet_v2_int8", "--images", str(SHARED_MEDIA), "--chart", "c.tflite"],
            "--chart must name a .png file",
        ),
        (
            [str(SHARED_MODELS / "deeplabv3_mnv2_pascal_quant.tflite"), "--video", str(CLIP)],
            "is not an image classifier",
        ),
        (
            [
                str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"),
                "--images",
                str(SHARED_MEDIA),
            ],
            "cannot load delegate 'edgetpu'",
        ),
    ],
)
def test_compare_errors_are_one_line(zoo_dir: Path, args: list[str], message: str) -> None:
    quick = [] if "--seconds" in args else ["--seconds", "0.1"]
    proc = run_camapp(["model", "compare", *args, *quick], zoo_dir)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [errors[0]] and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_too_many_frames_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo, "MAX_FRAMES", 5)
    with pytest.raises(ConfigError, match="8 frames to compare on: at most 5"):
        zoo.load_data(videos=[CLIP, CLIP], per_video=4)


def test_dequantize_then_quantize_commands(tmp_path: Path) -> None:
    int8 = SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    float_model, requantized = tmp_path / "float.tflite", tmp_path / "int8.tflite"
    proc = run_camapp(["model", "dequantize", str(int8), "--out", str(float_model)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    ratio = float_model.stat().st_size / int8.stat().st_size
    assert proc.stdout.strip() == (
        f"{float_model}: float32, {float_model.stat().st_size / 2**20:.2f} MiB "
        f"({ratio:.2f}x {int8.name})"
    )
    assert open_model(float_model).info.inputs[0].dtype == "float32"
    args = ["model", "quantize", str(float_model), "--calibration", str(CLIP), "--samples", "8",
            "--out", str(requantized)]  # fmt: skip
    proc = run_camapp(args, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "calibrating on 8 frames, 8 held out" in proc.stderr
    size = float_model.stat().st_size / requantized.stat().st_size
    first, second = proc.stdout.splitlines()
    assert first.startswith(f"{requantized}: ") and f"{size:.2f}x smaller" in first
    speedup = float(re.search(r"; ([\d.]+)x faster", first).group(1))
    assert speedup > 0
    assert re.fullmatch(
        r"top-1 agreement with the float model on 8 held-out frames: [\d.]+%; on those it "
        r"scores 0\.5 or more: ([\d.]+%|no such frame)",
        second,
    )
    info = open_model(requantized).info
    assert info.inputs[0].dtype == "uint8" and info.params == open_model(float_model).info.params


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quantize", "{int8}", "--calibration", str(CLIP), "--out", "{out}"], "already quantized"),
        (
            ["quantize", "{int8}", "--calibration", str(CLIP), "--samples", "0", "--out", "{out}"],
            "--samples must be 1 to 300",
        ),
        (
            ["quantize", "{deeplab}", "--calibration", str(CLIP), "--out", "{out}"],
            "is not an image classifier",
        ),
        (["dequantize", "{out}", "--out", "{out}"], "model file not found"),
        (["quantize", "{int8}", "--calibration", "/nonexistent", "--out", "{out}"], "not found"),
    ],
)
def test_quantize_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    paths = {
        "int8": SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite",
        "deeplab": SHARED_MODELS / "deeplabv3_mnv2_pascal_quant.tflite",
        "out": tmp_path / "out.tflite",
    }
    proc = run_camapp(["model", *(a.format(**paths) for a in args)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("camapp: error:") == 1 and message in proc.stderr
    assert not paths["out"].exists()


def test_progress_bar_on_a_terminal_and_in_a_log() -> None:
    log = io.StringIO()
    bar = Bar("x", log, width=4)
    bar("a", 0, 2)
    bar("done", 2, 2)
    bar.close()
    assert log.getvalue() == "x: [....] 0/2 a\nx: [####] 2/2 done\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Bar("x", screen, width=4)
    bar("longer step", 1, 2)
    bar("b", 2, 2)
    bar.close()
    assert screen.getvalue() == ("\rx: [##..] 1/2 longer step\rx: [####] 2/2 b" + " " * 10 + "\n")


def test_default_models_are_the_fetched_cpu_ones(zoo_dir: Path, tmp_path: Path) -> None:
    manifest = models.load_manifest()
    assert zoo.default_models(zoo_dir) == [
        zoo_dir / s.file for s in manifest.values() if s.name in SMALL
    ]
    models.fetch("mobilenet_v2_edgetpu", tmp_path, mirror=SHARED_MODELS)
    models.fetch("yolov8n_coco", tmp_path, mirror=SHARED_MODELS)
    with pytest.raises(ConfigError, match="run `camapp model fetch --all`"):
        zoo.default_models(tmp_path)  # the Edge TPU build needs its TPU; a detector has no classes


def _half_and_half(root: Path, n: int) -> Path:
    """Two classes told apart by the left half of each picture only: the right half shows
    the other class, so a model that looks at the whole picture cannot tell them apart."""
    photos = {"cat": cv2.imread(str(SHARED_MEDIA / "cat.bmp")),
              "person": cv2.imread(str(SHARED_MEDIA / "grace_hopper.bmp"))}  # fmt: skip
    for label, other in (("cat", "person"), ("person", "cat")):
        (root / label).mkdir(parents=True)
        for i in range(n):
            size = (96 + 5 * i, 160)
            left, right = cv2.resize(photos[label], size), cv2.resize(photos[other], size)
            cv2.imwrite(str(root / label / f"{i}.png"), np.hstack([left, right]))
    return root


def test_compare_runs_a_trained_model_on_the_view_it_learnt(tmp_path: Path) -> None:
    """`compare` gave a stretch/region model the default view: 93.5 % where classify said 96.7."""
    from camapp.training import TrainSettings, train

    out = tmp_path / "halves.tflite"
    base = str(SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite")
    settings = TrainSettings(
        base=base, crop="stretch", roi=(0.0, 0.0, 0.5, 1.0), augment=0, threads=2
    )
    train(_half_and_half(tmp_path / "train", 12), out, settings)
    data = zoo.load_data(datasets=[_half_and_half(tmp_path / "test", 8)], cover=128)
    plan = zoo.Plan(threads=(1,), workers=1, seconds=0.1, repeats=2)
    [row] = zoo.compare([out], out, data, plan)
    assert row.accuracy == 1.0 and row.scored == 16
