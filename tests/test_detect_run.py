"""`camapp run` with a detector: the real clip of people walking in one by one, the real
COCO detectors (fetched from ../shared/models like any zoo model), the real mosquitto and a
real subscriber; what comes out is judged against the clip's labelled frames."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from camapp import models
from camapp.errors import EXIT_USAGE
from camapp.training.clip import frame_labels
from tests.conftest import SHARED, SHARED_MEDIA, SHARED_MODELS, run_camapp, start_camapp
from tests.detect_helpers import fetched
from tests.mqtt_helpers import Broker, Subscriber
from tests.test_commands import send
from tests.test_ha import stop

pytest_plugins = ["tests.stream_servers"]  # the RTSP server

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
TRUTH = frame_labels(SHARED / "datasets" / "one-by-one-person-occupancy.json")
FPS = 30  # the clip's
# The right 40 % of the frame, down to its bottom edge (where a box cut off by the frame
# stands too); the people of the clip stand either side of x = 0.6.
RIGHT = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]
STATE_FRAMES = 3
LABELLED = sorted(TRUTH)
# The first labelled frame of each run of the truth after the first.
CHANGES = [
    f for f, before in zip(LABELLED[1:], LABELLED, strict=False) if TRUTH[f] != TRUTH[before]
]


@dataclass
class Run:
    """What a detector camera published, in arrival order, by topic."""

    stride: int
    frames: int  # captured
    objects: list[dict[str, Any]]
    events: list[dict[str, Any]]
    states: list[dict[str, Any]]


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with both COCO detectors and their labels, fetched and verified."""
    return fetched(tmp_path_factory.mktemp("detectors"), "ssd_mobilenet_v1_coco", "yolov8n_coco")


def _run(folder: Path, workdir: Path, model: str, frames: int, stride: int, *extra: str) -> Run:
    """One `camapp run` of the clip's first `frames` frames, every `stride`-th detected, with
    the right-half zone; everything it published under camapp/porch/."""
    config = workdir / f"{model}.toml"
    config.write_text(f'[[zones]]\nname = "right"\npoints = {json.dumps(RIGHT)}\n')
    broker = Broker(workdir).start()
    sub = Subscriber(broker.port, ["camapp/porch/#"])
    try:
        proc = run_camapp(
            ["run", "--config", str(config), "--source", str(CLIP), "--model", model,
             "--camera-id", "porch", "--no-realtime", "--no-drop", "--max-frames", str(frames),
             "--stride", str(stride), "--state-frames", str(STATE_FRAMES),
             "--mqtt-port", str(broker.port), *extra],
            folder,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "detecting in one-by-one-person-detection.mp4 with " + model in proc.stderr
        sub.wait_for(lambda: len(sub.on("camapp/porch/objects")) == -(-frames // stride))
        sub.sync("camapp/porch/sync")
        return Run(stride, frames, *(
            [json.loads(m.payload) for m in sub.on(f"camapp/porch/{name}")]
            for name in ("objects", "events", "state")
        ))  # fmt: skip
    finally:
        sub.close()
        broker.stop()


@pytest.fixture(scope="module")
def ssd(detectors: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The first 700 frames (three people in turn), every 3rd, with the SSD."""
    yield _run(detectors, tmp_path_factory.mktemp("ssd"), "ssd_mobilenet_v1_coco", 700, 3)


def _judged(run: Run) -> list[tuple[dict[str, Any], int]]:
    """(objects message, true person count) for the labelled frames more than 1 s after the
    last change of the truth (the tracker confirms a person in 3 processed frames and lets
    one go after 3 more: judged as the issue's targets are)."""
    out = []
    for message in run.objects:
        frame = message["frame"]
        if frame in TRUTH and not any(0 <= frame - c <= FPS for c in CHANGES):
            out.append((message, int(TRUTH[frame] == "person")))
    return out


def test_objects_come_in_frame_order_with_the_people_the_dataset_says(ssd: Run) -> None:
    assert [m["frame"] for m in ssd.objects] == list(range(0, ssd.frames, ssd.stride))
    judged = _judged(ssd)
    assert len(judged) > 150
    right = sum(m["counts"]["person"] == truth for m, truth in judged)
    assert right / len(judged) >= 0.99, [(m["frame"], m["counts"], t) for m, t in judged]
    first = ssd.objects[0]
    assert set(first) == {"frame", "ts", "objects", "counts", "model"}
    assert {m["model"] for m in ssd.objects} == {"ssd_mobilenet_v1_coco"}
    assert first["counts"] == {"person": 0, "car": 0, "dog": 0, "cat": 0}  # the default track
    seen = [o for m in ssd.objects for o in m["objects"]]
    assert seen and {o["label"] for o in seen} == {"person"}
    assert all(o["sub_label"] is None and 0 < o["score"] <= 1 for o in seen)
    assert all(0 <= o["box"][0] < o["box"][2] <= 1 and 0 <= o["box"][1] < o["box"][3] <= 1
               for o in seen)  # fmt: skip


def test_an_object_is_in_the_zone_its_feet_are_in(ssd: Run) -> None:
    seen = [o for m in ssd.objects for o in m["objects"]]
    for o in seen:
        x1, _, x2, _ = o["box"]
        assert o["zones"] == (["right"] if (x1 + x2) / 2 > 0.6 else []), o
    assert {tuple(o["zones"]) for o in seen} == {(), ("right",)}  # the clip has both
    for m in ssd.objects:
        assert m["counts"]["person"] == len(m["objects"])


def test_the_state_changes_once_a_count_has_held(ssd: Run) -> None:
    """Each published state's counts held from its `frame` for `state_frames` processed
    frames; persons and the zone both change; nothing else is counted."""
    assert ssd.states[0] == {
        "frame": 0,
        "counts": {"person": 0, "car": 0, "dog": 0, "cat": 0},
        "zones": {"right": {"person": 0, "car": 0, "dog": 0, "cat": 0}},
    }
    by_frame = {m["frame"]: m for m in ssd.objects}
    for before, state in zip(ssd.states, ssd.states[1:], strict=False):
        assert state["frame"] > before["frame"]
        held = [by_frame[state["frame"] + i * ssd.stride] for i in range(STATE_FRAMES)]
        if state["counts"] != before["counts"]:
            assert all(m["counts"] == state["counts"] for m in held), (state, held)
            earlier = by_frame[state["frame"] - ssd.stride]
            assert earlier["counts"] != state["counts"]  # the change began at `frame`
    persons = [s["counts"]["person"] for s in ssd.states]
    assert [p for i, p in enumerate(persons) if i == 0 or p != persons[i - 1]] == [0, 1, 0, 1, 0, 1]
    assert any(s["zones"]["right"]["person"] == 1 for s in ssd.states)


def test_each_tracked_object_is_new_once_then_ends(ssd: Run) -> None:
    by_id: dict[int, list[dict[str, Any]]] = {}
    for event in ssd.events:
        by_id.setdefault(event["id"], []).append(event)
    assert len(by_id) >= 3  # three people came and went
    for events in by_id.values():
        types = [e["type"] for e in events]
        assert types[0] == "new" and "new" not in types[1:] and "end" not in types[:-1], types
        assert {e["label"] for e in events} == {"person"}
        assert all(e["sub_label"] is None for e in events)
        if types[-1] == "end":
            assert events[0]["start"] <= events[-1]["end"]
    ended = [events[-1] for events in by_id.values() if events[-1]["type"] == "end"]
    assert len(ended) >= 2 and all(e["end"] is not None for e in ended)
    announced = {e["id"]: e["frame"] for e in ssd.events if e["type"] == "new"}
    for m in ssd.objects:  # every object published was announced, at or before its frame
        assert all(announced[o["id"]] <= m["frame"] for o in m["objects"])


def test_yolo_counts_the_person_too(detectors: Path, tmp_path: Path) -> None:
    run = _run(detectors, tmp_path, "yolov8n_coco", 150, 3, "--min-score", "0.3")
    assert [m["frame"] for m in run.objects] == list(range(0, 150, 3))
    judged = _judged(run)
    assert len(judged) > 30
    assert all(m["counts"]["person"] == truth for m, truth in judged), judged
    # The first person walks in and is still there: one track, new, never ended.
    assert {e["id"] for e in run.events} == {1}
    assert run.events[0]["type"] == "new" and "end" not in [e["type"] for e in run.events]
    assert run.states[-1]["counts"]["person"] == 1


@pytest.mark.parametrize(
    ("extra", "zones", "message"),
    [
        ([], "[[0, 0], [1, 1]]", r"zones.0.points: needs at least 3 points, got 2 "),
        ([], "[[0, 0], [1, 1], [1.5, 0]]", r"zones.0.points: point 3 \(1.5, 0\) is outside"),
        (["--track", ""], None, r"command line: --track: must name at least one label"),
    ],
)  # fmt: skip
def test_bad_detector_settings_are_one_line(
    extra: list[str], zones: str | None, message: str, detectors: Path, tmp_path: Path
) -> None:
    config = tmp_path / "camapp.toml"
    config.write_text(f'[[zones]]\nname = "porch"\npoints = {zones}\n' if zones else "")
    proc = run_camapp(
        ["run", "--config", str(config), "--source", str(CLIP), "--model",
         "ssd_mobilenet_v1_coco", "--mqtt-port", "1", *extra],
        detectors,
    )  # fmt: skip
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("camapp: error: "), proc.stderr
    assert re.search(message, lines[0]), lines[0]


def test_a_detector_and_a_classifier_camera_share_one_process(
    detectors: Path, broker, subscriber_factory, tmp_path: Path
) -> None:
    """Each camera gets its own kind of output from the one pool, and its own kind of Home
    Assistant entities; each refuses a model of the other kind on `set`, in one line."""
    models.fetch(models.DEFAULT_MODEL, detectors, mirror=SHARED_MODELS)
    config = tmp_path / "camapp.toml"
    config.write_text(
        f"stride = 3\nloop = true\nmqtt.port = {broker.port}\n"
        f'[[cameras]]\ncamera_id = "door"\nsource = "{CLIP}"\n'
        f'[[cameras]]\ncamera_id = "yard"\nsource = "{CLIP}"\nmodel = "ssd_mobilenet_v1_coco"\n'
    )
    sub = subscriber_factory(broker.port, ["camapp/#", "homeassistant/#"])
    proc = start_camapp(["run", "--config", str(config)], detectors)
    try:
        sub.wait_for(lambda: sub.on("camapp/door/classification") and sub.on("camapp/yard/objects"))
        assert send(sub, "yard", {"model": "mobilenet_v2_int8"}) == (
            "model: mobilenet_v2_int8 is an image classifier (1001 classes); camera yard "
            "detects objects"
        )
        refused = send(sub, "door", {"model": "ssd_mobilenet_v1_coco"})
        assert refused is not None and "is not an image classifier" in refused, refused
        assert send(sub, "yard", {"stride": 2}) is None
    finally:
        stop(proc)
    sub.sync("camapp/sync")
    topics = {m.topic for m in sub.messages}
    assert "camapp/yard/classification" not in topics and "camapp/door/objects" not in topics
    announced = {t.split("/")[2] for t in topics if t.startswith("homeassistant/")}
    assert announced == {"camapp-door", "camapp-yard"}
    yard = {t.split("/")[3] for t in topics if t.startswith("homeassistant/") and "-yard/" in t}
    assert {"count_person", "occupied_person", "trigger_person_appeared"} <= yard
    assert not {"label", "threshold"} & yard and "model" in yard  # its select: detectors


def test_a_lost_stream_makes_the_counts_unknown_then_fresh(
    detectors: Path, rtsp_server, broker, subscriber_factory
) -> None:
    """A detector camera's state, like a classifier's, does not outlive its source: after
    `source_timeout` it says the source is offline, and counts start afresh once it is back."""
    state = "camapp/street/state"
    sub = subscriber_factory(broker.port, ["camapp/street/objects", state])
    args = ["run", "--source", rtsp_server.url, "--camera-id", "street", "--source-timeout", "1",
            "--model", "ssd_mobilenet_v1_coco", "--mqtt-port", str(broker.port)]  # fmt: skip
    proc = start_camapp(args, detectors)
    try:
        sub.wait_for(lambda: len(sub.on(state)) >= 1)
        rtsp_server.stop()
        sub.wait_for(lambda: any(b"source offline" in m.payload for m in sub.on(state)))
        rtsp_server.start()
        sub.wait_for(lambda: b"source offline" not in sub.on(state)[-1].payload)
    finally:
        stop(proc)
    states = [json.loads(m.payload) for m in sub.on(state)]
    lost = next(s for s in states if s.get("reason") == "source offline")
    assert lost["counts"] is None and lost["zones"] is None and lost["frame"] is None
    assert isinstance(states[-1]["counts"]["person"], int)
