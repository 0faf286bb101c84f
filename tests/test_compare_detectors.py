"""`camapp model compare` on detectors: the two real COCO detectors on the person clip's
labelled frames, their counts through the real pipeline against a lone detector's, against
each other and against the occupancy labels; one kind at a time; bad input one line."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from camapp import models
from camapp.inference import loader
from camapp.tools import compare as zoo
from camapp.tools import compare_detectors as detectors
from tests.conftest import SHARED, SHARED_MEDIA, run_camapp
from tests.detect_helpers import fetched

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"
YOLO, SSD = "yolov8n_coco", "ssd_mobilenet_v1_coco"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both COCO detectors and the default classifier, fetched and verified."""
    return fetched(tmp_path_factory.mktemp("compare-detectors"), YOLO, SSD, models.DEFAULT_MODEL)


def test_more_frames_asked_for_than_are_labelled_takes_every_labelled_one(tmp_path) -> None:
    """Six labelled frames and 16 asked for: all six, not the first half of them."""
    ranges = tmp_path / "six.json"
    ranges.write_text(json.dumps({"ranges": [{"label": "empty", "first": 0, "last": 5}]}))
    data = zoo.load_data(videos=[CLIP], per_video=16, cover=64, occupancy=ranges)
    assert len(data.frames) == 6 and data.truth == ["empty"] * 6


def test_two_detectors_are_compared_by_their_counts(folder: Path) -> None:
    """16 labelled frames spread over the clip (people in and out): each frame's counts
    through the pipeline are those a lone detector gives; agreement and accuracy are the
    shares of equal counts. Counting people, both are right on most frames; counting TVs
    too, the SSD's TV on the dark window (../shared/README.md) is wrong on every frame."""
    data = zoo.load_data(videos=[CLIP], per_video=16, cover=640, occupancy=RANGES)
    assert data.summary == "16 labelled video frames" and len(data.frames) == 16
    assert set(data.truth) == {"empty", "person"}
    paths = [folder / models.load_manifest()[name].file for name in (YOLO, SSD)]
    plan = zoo.Plan(threads=(1,), workers=2, seconds=0.1, repeats=2)
    steps: list[tuple[str, int, int]] = []
    rows = detectors.compare(paths, paths[1], data, ["person", "tv"], 0.4, plan,
                             lambda *s: steps.append(s))  # fmt: skip
    assert [row.name for row in rows] == [SSD, YOLO] and steps[-1] == ("done", 4, 4)
    for row in rows:
        lone = loader.load_detector(loader.plan_detector(str(row.path), min_score=0.4))
        counts = [lone.detect(frame).counts for frame in data.frames]
        assert row.counts == [{"person": c.get("person", 0), "tv": c.get("tv", 0)} for c in counts]
        assert row.per_s > 0 and row.latency_ms[1] > 0 and row.workers == 2
        want = [{"person": int(t == "person"), "tv": 0} for t in data.truth]
        right = sum(got == w for got, w in zip(row.counts, want, strict=True))
        assert (row.accuracy, row.scored) == (right / 16, 16)
    ssd, yolo = rows
    assert ssd.agreement == 1.0
    same = sum(a == b for a, b in zip(yolo.counts, ssd.counts, strict=True))
    assert yolo.agreement == same / 16
    assert ssd.accuracy == 0.0 and all(c["tv"] == 1 for c in ssd.counts)
    people = [replace(row, counts=[{"person": c["person"]} for c in row.counts]) for row in rows]
    for row in people:
        detectors.score(row, people[0], data.truth)
    assert min(row.accuracy or 0 for row in people) >= 0.8 and people[1].agreement >= 0.8
    assert ssd.input_size == (300, 300) and yolo.input_size == (640, 640)
    table = detectors.markdown(rows, data, 0.4)
    assert f"| {SSD} | coco | 300x300 | 3.99 | 4.10 | 728.04 |" in table
    assert "| reference |" in table and "of 16 |" in table


def test_compare_command_on_detectors(folder: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    proc = run_camapp(
        ["model", "compare", YOLO, SSD, "--video", str(CLIP), "--occupancy", str(RANGES),
         "--frames", "6", "--seconds", "0.1", "--track", "person", "--min-score", "0.4",
         "--chart", str(chart)],
        folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| model | label set | input | MiB | params M | MACs M | p50 ms 1")
    assert lines[0].endswith(f"| counts as {SSD} | counts right |")
    assert lines[2].startswith(f"| {SSD} | coco | 300x300 |")
    assert re.search(r"\| reference \| \d+\.\d% of 6 \|$", lines[2])
    assert re.search(r"\| \d+\.\d% \| \d+\.\d% of 6 \|$", lines[3])
    assert "On 6 labelled video frames" in proc.stdout and "for person." in proc.stdout
    assert chart.read_bytes()[:4] == b"\x89PNG"
    listed = run_camapp(["model", "list"], folder).stdout
    assert re.search(rf"{YOLO} .* fetched\s+\d+\.\d\d ms", listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([models.DEFAULT_MODEL, SSD, "--video", str(CLIP)],
         f"model compare takes one kind at a time: {models.DEFAULT_MODEL} is a classifier, "
         f"{SSD} a detector"),
        ([SSD, "--reference", models.DEFAULT_MODEL, "--video", str(CLIP)],
         "takes one kind at a time"),
        ([models.DEFAULT_MODEL, "--video", str(CLIP), "--occupancy", str(RANGES)],
         "--occupancy, --track and --min-score are for comparing detectors"),
        ([models.DEFAULT_MODEL, "--video", str(CLIP), "--track", "person"],
         "are for comparing detectors"),
        ([SSD, "--occupancy", str(RANGES), "--images", str(SHARED_MEDIA)],
         "--occupancy labels the frames of one --video FILE"),
        ([SSD, "--video", str(CLIP), "--min-score", "2"], "--min-score"),
        ([SSD, "--video", str(CLIP), "--track", ""], "--track: must name at least one label"),
        ([SSD, "--video", str(CLIP), "--occupancy", "{bad}"], "invalid frame ranges file"),
        ([SSD, "--video", str(CLIP), "--occupancy", "{late}"], "beyond the end of"),
        # A range to 1e12 filled memory and /dev/zero was read whole (MemoryError), a FIFO
        # hung: bounded now.
        ([SSD, "--video", str(CLIP), "--occupancy", "{huge}"], "more than 1000000 frames"),
        ([SSD, "--video", str(CLIP), "--occupancy", "{fifo}"], "not a regular file"),
    ],
)  # fmt: skip
def test_bad_detector_comparisons_are_one_line(
    folder: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad, late = tmp_path / "bad.json", tmp_path / "late.json"
    bad.write_text('{"ranges": [{"label": "person"}]}')
    late.write_text(json.dumps({"ranges": [{"label": "person", "first": 5000, "last": 5001}]}))
    huge, fifo = tmp_path / "huge.json", tmp_path / "fifo.json"
    huge.write_text(json.dumps({"ranges": [{"label": "person", "first": 0, "last": 10**12}]}))
    os.mkfifo(fifo)
    args = [a.format(bad=bad, late=late, huge=huge, fifo=fifo) for a in args]
    proc = run_camapp(["model", "compare", *args, "--seconds", "0.1"], folder)
    assert proc.returncode == 2, proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if "error" in line]
    assert line.startswith("camapp: error: ") and message in line, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
