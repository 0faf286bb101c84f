"""The model ladder of a detector camera: YOLOv8n stepping down to the SSD (both COCO, class
ids of their own) under a CPU budget and back up, with the real models, the pure controller
and the real `camapp run`; the tracker following a person across the steps; a rung that
cannot stand in refused with one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp import models
from camapp.config.schema import CameraSettings
from camapp.detect.track import Tracker
from camapp.detect.zones import count
from camapp.errors import EXIT_USAGE
from camapp.governor.controller import Budgets, Controller
from camapp.inference import ladder, loader
from camapp.training.clip import clip_frames, frame_labels
from tests.conftest import SHARED, SHARED_MEDIA, SHARED_MODELS, run_camapp, start_camapp
from tests.detect_helpers import fetched
from tests.test_commands import send
from tests.test_governor import CAMERA, LadderPlant, drive
from tests.test_ha import stop

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
TRUTH = frame_labels(SHARED / "datasets" / "one-by-one-person-occupancy.json")
YOLO, SSD = "yolov8n_coco", "ssd_mobilenet_v1_coco"


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with both COCO detectors (and the default classifier), verified."""
    return fetched(tmp_path_factory.mktemp("detectors"), YOLO, SSD, models.DEFAULT_MODEL)


def test_a_detector_ladder_is_measured_and_stepped_down_and_back(
    detectors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's COCO ladder, timed here: the SSD is kept below YOLOv8n; a controller
    fed the load those costs make steps down under a budget YOLOv8n exceeds, holds the budget
    on the SSD with every frame, and climbs back once YOLOv8n fits."""
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(detectors))
    camera = CameraSettings(
        camera_id="door", model=YOLO, adapt="model", min_score=0.3, min_scores={"person": 0.6}
    )
    spec = loader.plan_camera(camera)
    rungs = ladder.build(camera, spec, loader.load_any(spec), 1)
    assert [rung.name for rung in rungs.setups] == [YOLO, SSD]
    assert all(dict(rung.min_scores) == {"person": 0.6} for rung in rungs.setups)  # each rung
    assert rungs.costs[1] <= ladder.CHEAPER * rungs.costs[0]
    # 15 frames/s on 2 cores: cost ms x 15 / 1000 / 2 x 100 % of the machine, plus 1 %.
    plant = LadderPlant(
        CAMERA, cost=rungs.costs[0] * 0.75, costs=(1.0, rungs.costs[1] / rungs.costs[0])
    )
    top, bottom = (1 + plant.cost * c * CAMERA.fps for c in plant.costs)
    controller = Controller(CAMERA, 2, 3.0, rungs.costs, "model")
    budget = (top + bottom) / 2  # YOLOv8n over it, the SSD under it
    history = drive(controller, plant, Budgets(cpu=budget), 20)
    assert history[0][1].rung == 1 and history[0][2].endswith("a cheaper model")
    assert all(knobs.rung == 1 and knobs.stride == 1 for _, knobs, _ in history)
    assert max(cpu for cpu, _, _ in history[1:]) <= budget
    roomy = top / 0.7  # YOLOv8n at 70 % of it: under the 80 % a step up needs
    history = drive(controller, plant, Budgets(cpu=roomy), 30, start=20)
    assert controller.rung == 0 and any(why.endswith("a bigger model") for _, _, why in history)
    assert max(cpu for cpu, _, _ in history) <= roomy


def test_tracks_and_counts_survive_switching_detectors(detectors: Path) -> None:
    """The person who walks in first, detected by YOLOv8n and the SSD in turns of 10 frames
    (every 2nd frame) while they walk in and stand in the room (frames 60-180, 6 switches):
    one track throughout, never ended at a switch, counted on every labelled frame once
    confirmed; both models found them."""
    yolo, ssd = (
        loader.load_detector(loader.plan_detector(str(detectors / models.load_manifest()[n].file),
                                                  min_score=s))
        for n, s in ((YOLO, 0.3), (SSD, 0.4))
    )  # fmt: skip
    tracker = Tracker([])
    news, ends, answered = [], [], set()
    for i, frame in clip_frames(CLIP, stride=2, first=60, last=180):
        model = yolo if (i // 10) % 2 else ssd
        found = model.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        people = [o for o in found.objects if o.label == "person"]
        answered |= {found.model} if people else set()
        events = tracker.update(i, i / 10, *_arrays(people), ["person"] * len(people))
        news += [e.id for e in events if e.type == "new"]
        ends += [e.id for e in events if e.type == "end"]
        counts = count(((t.label, t.zones) for t in tracker.tracks), ["person"], [])
        if i >= 80 and i in TRUTH:
            assert counts.labels["person"] == 1, (i, found.model, people)
    assert answered == {yolo.model, ssd.model}
    assert len(news) == 1 and ends == [], (news, ends)


def _arrays(people: list) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([p.box for p in people], np.float64).reshape(-1, 4)
    return boxes, np.array([p.score for p in people], np.float64)


def test_a_detector_camera_steps_down_its_ladder_and_back_in_a_run(
    detectors: Path, broker, subscriber_factory
) -> None:
    """`camapp run` with YOLOv8n, `--adapt model` and a 5 % CPU budget: the SSD answers
    (named in `objects`, `rung` 1 in `stats`); the budget lifted by `set`, YOLOv8n again."""
    topics = ["camapp/lad/objects", "camapp/lad/stats", "camapp/lad/config", "camapp/lad/error"]
    sub = subscriber_factory(broker.port, topics)
    args = ["run", "--source", str(CLIP), "--camera-id", "lad", "--model", YOLO, "--loop",
            "--no-realtime", "--min-score", "0.3", "--adapt", "model", "--cpu-budget", "5",
            "--stats-interval", "1", "--mqtt-port", str(broker.port)]  # fmt: skip
    proc = start_camapp(args, detectors)
    try:
        sub.wait_for(lambda: any(_model(m) == SSD for m in sub.on(topics[0])))
        sub.wait_for(lambda: any(json.loads(m.payload)["rung"] == 1 for m in sub.on(topics[1])))
        assert send(sub, "lad", {"cpu_budget": None}) is None
        lifted = len(sub.on(topics[0]))
        sub.wait_for(lambda: any(_model(m) == YOLO for m in sub.on(topics[0])[lifted:]))
    finally:
        err = stop(proc)
        print(err)
    assert f"model ladder {YOLO} " in err and "a cheaper model" in err, err


def _model(message) -> str:
    return json.loads(message.payload)["model"]


@pytest.mark.parametrize(
    ("ladder_setting", "message"),
    [
        (models.DEFAULT_MODEL, r"^camapp: error: ladder: mobilenet_v2_int8 is an image "
         r"classifier \(1001 classes\); camera cam0 detects objects$"),
        ("missing_model", r"^camapp: error: .*missing_model"),
    ],
)  # fmt: skip
def test_a_rung_that_cannot_stand_in_for_a_detector_is_one_line(
    ladder_setting: str, message: str, detectors: Path
) -> None:
    proc = run_camapp(
        ["run", "--source", str(CLIP), "--model", SSD, "--adapt", "model", "--ladder",
         ladder_setting, "--mqtt-port", "1"],
        detectors,
    )  # fmt: skip
    assert proc.returncode == EXIT_USAGE and proc.stdout == "", proc.stderr
    [line] = proc.stderr.splitlines()
    assert re.search(message, line), line


def test_a_rung_that_lacks_a_tracked_label_is_one_line(detectors: Path, tmp_path: Path) -> None:
    """The SSD with its own names for COCO's classes ('visitor' for person): YOLOv8n, whose
    labels say person, cannot follow the visitors the camera tracks."""
    names = (SHARED_MODELS / "ssd_mobilenet_v1_coco_labelmap.txt").read_text().splitlines()
    labels = tmp_path / "visitors.txt"
    labels.write_text("\n".join("visitor" if n == "person" else n for n in names) + "\n")
    proc = run_camapp(
        ["run", "--source", str(CLIP), "--model", SSD, "--labels", str(labels), "--track",
         "visitor", "--adapt", "auto", "--ladder", YOLO, "--mqtt-port", "1"],
        detectors,
    )  # fmt: skip
    assert proc.returncode == EXIT_USAGE and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [
        f"camapp: error: ladder: {YOLO} has no class 'visitor', which camera cam0 tracks"
    ]
