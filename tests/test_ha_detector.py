"""Home Assistant and a detector camera: discovery of its counts, occupancy, pictures and
device triggers, the templates Home Assistant renders on its state, the snapshot of each
object's best frame, and `ha remove`. The real SSD on the real clip of people walking in one
by one, a real mosquitto, camapp as a child process; templates rendered by Jinja2's sandbox,
as Home Assistant renders them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from camapp import models
from camapp.capture.base import Frame
from camapp.config.schema import HaSettings, MqttSettings
from camapp.detect.draw import COLOURS
from camapp.detect.zones import parse_zones
from camapp.inference import loader
from camapp.inference.detector import Detection, DetectionResult
from camapp.publish import ha
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.objects import ObjectsSink
from camapp.publish.snapshot import MAX_HELD, EventSnapshots, objects_drawer
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result
from camapp.runtime.controls import Controls
from camapp.runtime.tap import FrameTap
from camapp.training.clip import clip_frames
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp
from tests.mqtt_helpers import Broker, Subscriber
from tests.web_helpers import decode_jpeg

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
FRAMES, STRIDE = 300, 3  # the first person walks in, into the zone, and out of it
RIGHT = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]  # as in test_detect_run
CONFIGS = "homeassistant/+/camapp-porch/+/config"
# Left retained by an earlier run: the classifier the camera was, and a zone since removed.
STALE = ("homeassistant/sensor/camapp-porch/label/config",
         "homeassistant/sensor/camapp-porch/count_gone_person/config")  # fmt: skip
TRACK = ("person", "car")


@dataclass
class Run:
    broker: Broker
    folder: Path
    configs: dict[str, dict[str, Any]]  # object id -> the config retained after the run
    components: dict[str, str]  # object id -> component
    published: dict[str, list[Any]]  # topic name under camapp/porch -> payloads, in order


def retained(port: int) -> dict[str, tuple[str, bytes]]:
    """Object id -> (component, payload) of every config the broker retains for porch."""
    sub = Subscriber(port, [CONFIGS, "homeassistant/ready"])
    try:
        sub.publish("homeassistant/ready", "marker")  # comes back after every retained one
        sub.wait_for(lambda: bool(sub.on("homeassistant/ready")))
        return {m.topic.split("/")[3]: (m.topic.split("/")[1], m.payload) for m in sub.messages
                if m.topic != "homeassistant/ready"}  # fmt: skip
    finally:
        sub.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("detector")
    models.fetch("ssd_mobilenet_v1_coco", folder, mirror=SHARED_MODELS)
    config = folder / "camapp.toml"
    config.write_text(
        f"track = {json.dumps(TRACK)}\nhttp.view_width = 1024\n"
        f'[[zones]]\nname = "right"\npoints = {json.dumps(RIGHT)}\n'
    )
    broker = Broker(folder).start()
    sub = Subscriber(broker.port, ["camapp/porch/#"])
    try:
        for topic in STALE:
            sub.publish(topic, '{"name": "stale"}', retain=True)
        proc = run_camapp(
            ["run", "--config", str(config), "--source", str(CLIP), "--model",
             "ssd_mobilenet_v1_coco", "--camera-id", "porch", "--no-realtime", "--no-drop",
             "--max-frames", str(FRAMES), "--stride", str(STRIDE), "--state-frames", "2",
             "--mqtt-port", str(broker.port)],
            folder,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        sub.sync("camapp/porch/sync")
        published: dict[str, list[Any]] = {}
        for m in sub.messages:
            name = m.topic.removeprefix("camapp/porch/")
            binary = name.startswith("snapshot") or name in ("triggers", "availability")
            published.setdefault(name, []).append(m.payload if binary else json.loads(m.payload))
        found = retained(broker.port)
        configs = {key: json.loads(payload) for key, (_, payload) in found.items()}
        components = {key: component for key, (component, _) in found.items()}
        yield Run(broker, folder, configs, components, published)
    finally:
        sub.close()
        broker.stop()


def render(template: str, payload: dict[str, Any]) -> str:
    """A value_template as Home Assistant renders it on a JSON payload."""
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value_json=payload).strip()


def test_the_counts_pictures_and_triggers_are_announced_and_stale_configs_removed(
    run: Run,
) -> None:
    configs, components = run.configs, run.components
    counts = {f"{kind}_{where}" for kind in ("count", "occupied")
              for where in ("person", "car", "right_person", "right_car")}  # fmt: skip
    triggers = {f"trigger_{label}_{kind}" for label in TRACK for kind in ("appeared", "left")}
    triggers |= {f"trigger_{label}_{kind}_right" for label in TRACK for kind in ("entered", "left")}
    pictures = {"snapshot", "snapshot_person", "snapshot_car"}
    controls = {"paused", "cpu_budget", "classification_rate", "cpu", "power"}
    assert counts | triggers | pictures | controls <= set(configs)
    assert not {"label", "score", "threshold", "count_gone_person"} & set(configs)
    assert configs["model"]["options"] == ["ssd_mobilenet_v1_coco"]  # the detectors it knows
    assert {components[k] for k in triggers} == {"device_automation"}
    for key, config in configs.items():
        assert config["device"]["identifiers"] == ["camapp-porch"] and config["qos"] == 1
        if components[key] == "device_automation":  # the keys Home Assistant requires
            assert config["automation_type"] == "trigger" and config["topic"] == (
                "camapp/porch/triggers"
            )
            assert {"type", "subtype", "payload"} <= set(config) and "unique_id" not in config
        else:
            assert config["unique_id"] == f"camapp-porch_{key}" and "name" in config
            assert config["availability_topic"] == "camapp/porch/availability"
        if components[key] in ("sensor", "binary_sensor"):
            assert config["state_topic"].startswith("camapp/porch/")
        if components[key] == "image":
            assert config["content_type"] == "image/jpeg" and config["image_topic"]
    kinds = [(configs[k]["type"], configs[k]["subtype"]) for k in triggers]
    assert len(set(kinds)) == len(kinds)  # unique per device, as Home Assistant requires
    entered = configs["trigger_person_entered_right"]
    assert (entered["subtype"], entered["type"]) == ("person", "entered right")
    assert configs["occupied_right_person"]["device_class"] == "occupancy"
    assert configs["snapshot_person"]["image_topic"] == "camapp/porch/snapshot/person"


def test_the_state_drives_the_count_and_occupancy_templates(run: Run) -> None:
    states = run.published["state"]
    persons = [s["counts"]["person"] for s in states]
    assert 0 in persons and 1 in persons  # the person came and went
    templates = {key: c["value_template"] for key, c in run.configs.items()
                 if key.startswith(("count_", "occupied_"))}  # fmt: skip
    for state in states:
        for label in TRACK:
            for key, count in ((label, state["counts"][label]),
                               (f"right_{label}", state["zones"]["right"][label])):  # fmt: skip
                assert render(templates[f"count_{key}"], state) == str(count)
                assert render(templates[f"occupied_{key}"], state) == ("ON" if count else "OFF")
    # A lost source makes them unknown (None), never 0 or OFF.
    lost = {"frame": None, "counts": None, "zones": None, "since": 1.0, "reason": "x"}
    assert {render(t, lost) for t in templates.values()} == {"None"}


def test_a_trigger_fires_when_a_person_enters_the_zone(run: Run) -> None:
    """What the device triggers match, as the events say it happened: each object appears,
    enters the zone when its events first place it there, and leaves it."""
    fired = [m.decode() for m in run.published["triggers"]]
    expected: list[str] = []
    zones: dict[int, list[str]] = {}
    for event in run.published["events"]:
        before = zones.get(event["id"], [])
        now = [] if event["type"] == "end" else event["zones"]
        expected += [f"{event['label']} appeared"] if event["type"] == "new" else []
        expected += [f"{event['label']} entered {z}" for z in now if z not in before]
        expected += [f"{event['label']} left {z}" for z in before if z not in now]
        expected += [f"{event['label']} left"] if event["type"] == "end" else []
        zones[event["id"]] = now
    assert fired == expected
    assert "person entered right" in fired and "person left right" in fired
    payloads = {c["payload"] for k, c in run.configs.items() if k.startswith("trigger_")}
    assert set(fired) <= payloads  # each matches a trigger Home Assistant knows


def test_each_labels_snapshot_is_its_objects_best_frame_with_the_boxes(run: Run) -> None:
    """`snapshot/person` gets the frame of an object's top score (its events' `best`), its
    box drawn there, when the object is confirmed and when an event of it comes with a
    better top score than that of its last picture."""
    pictures = run.published["snapshot/person"]
    assert "snapshot/car" not in run.published  # no car in the clip
    sent: dict[int, float] = {}
    due = []
    for event in run.published["events"]:
        if event["top_score"] > sent.get(event["id"], 0.0):
            sent[event["id"]] = event["top_score"]
            due.append(event)
    assert 2 <= len(pictures) <= len(due)  # two people; a newer one may replace one unsent
    last, event = decode_jpeg(pictures[-1]), due[-1]
    assert last.shape == (432, 768, 3)  # the clip's frame, narrower than view_width
    video = cv2.VideoCapture(str(CLIP))
    video.set(cv2.CAP_PROP_POS_FRAMES, event["best"]["frame"])
    ok, frame = video.read()
    assert ok
    x1, y1, x2, y2 = (round(v * s) for v, s in zip(event["best"]["box"], (768, 432) * 2,
                                                    strict=True))  # fmt: skip
    colour = np.array(COLOURS[event["id"] % len(COLOURS)])
    drawn = np.abs(last.astype(int) - colour).max(axis=2) < 60
    assert drawn[y1:y2, max(0, x1 - 2) : x1 + 3].any(axis=1).mean() > 0.9  # its left edge
    assert drawn[y1:y2, x2 - 3 : x2 + 2].any(axis=1).mean() > 0.9  # its right edge
    assert drawn[y2 - 3 : y2 + 2, x1:x2].any(axis=0).mean() > 0.9  # its bottom edge
    # Elsewhere it is that very frame.
    away = np.ones(drawn.shape, bool)
    away[max(0, y1 - 40) : y2 + 4, max(0, x1 - 4) : x2 + 200] = False
    assert np.abs(last.astype(int) - frame.astype(int))[away].mean() < 4
    assert (
        not (np.abs(frame.astype(int) - colour).max(axis=2) < 60)[y1:y2, x2 - 3 : x2 + 2]
        .any(axis=1)
        .mean()
        > 0.9
    )  # the frame itself has no such edge


def test_ha_remove_leaves_nothing_retained(run: Run) -> None:
    assert any(c == "device_automation" for c in run.components.values())
    proc = run_camapp(
        ["ha", "remove", "--camera-id", "porch", "--mqtt-port", str(run.broker.port)],
        run.folder,
    )
    assert proc.returncode == 0, proc.stderr
    assert retained(run.broker.port) == {}


def test_without_snapshots_no_image_is_announced() -> None:
    publisher = MqttPublisher(MqttSettings(), "camapp-garage")  # never started
    channel = Channel(publisher, "camapp", "garage", ("camapp/garage/availability",))
    counting = ha.Counting(("car",), ("drive",))
    on = ha.Camera(channel, 1, "ssd", (), counting=counting)
    off = ha.Camera(channel, 1, "ssd", (), snapshots=False, counting=counting)
    images = [
        [t for t in ha.discovery_configs(camera, "homeassistant") if "/image/" in t]
        for camera in (on, off)
    ]
    assert len(images[0]) == 2 and images[1] == []


def test_a_change_of_zones_reannounces_and_removes_the_zones_gone() -> None:
    """The path a change of zones at run time takes: the entities of a zone gone are
    deleted (empty retained configs), those of a new one announced."""
    publisher = MqttPublisher(MqttSettings(), "camapp-garage")  # never started: it queues
    channel = Channel(publisher, "camapp", "garage", ("camapp/garage/availability",))

    def camera(zones: tuple[str, ...]) -> ha.Camera:
        return ha.Camera(channel, 1, "ssd", (), counting=ha.Counting(("car",), zones))

    discovery = ha.Discovery(camera(("drive", "gate")), HaSettings())
    discovery.update(camera(("drive", "street")))
    queued = {m.topic.split("/")[3]: m.payload for m in publisher._outbox._queued}
    assert {k for k, v in queued.items() if not v} == {
        "count_gate_car", "occupied_gate_car", "trigger_car_entered_gate",
        "trigger_car_left_gate",
    }  # fmt: skip
    assert queued["count_street_car"] and queued["count_drive_car"]


def test_one_candidate_frame_per_live_track_each_dropped_when_its_track_goes(run: Run) -> None:
    """The snapshots' memory: the real SSD on the clip, in process, through the real sinks
    (the publisher never started: it queues). At every frame the frames kept belong to live
    tracks only, and each label's picture is the frame its events name."""
    spec = loader.plan_detector(str(models.resolve_model("ssd_mobilenet_v1_coco", run.folder)))
    detector = loader.load_detector(spec)
    publisher = MqttPublisher(MqttSettings(), "camapp-t")
    channel = Channel(publisher, "camapp", "t", ("camapp/t/availability",))
    objects = ObjectsSink(channel, ("person",), parse_zones([("right", RIGHT)]), 2)
    shots = EventSnapshots(channel, FrameTap(), objects, 1024)
    kept, ended = 0, set()
    for n, image in clip_frames(CLIP, stride=STRIDE, last=FRAMES - 1):
        frame = Frame(n, n / 10, image, n / 10, bgr=True)
        result = Result(n, n / 10, n / 10, detector.detect(image, True), frame)
        objects.send(result)
        shots.send(result)
        ended |= {e.id for e in objects.events if e.type == "end"}
        assert set(shots._best) <= {t.id for t in objects.tracker.live}
        kept = max(kept, len({id(b.frame) for b in shots._best.values() if b.frame is not None}))
    assert ended and not ended & set(shots._best) and 1 <= kept <= 3
    shots.stop()
    shots.run()  # publishes what is due, then returns
    queued = [m for m in publisher._outbox._queued if m.topic == "camapp/t/snapshot/person"]
    assert len(queued) == 1 and decode_jpeg(queued[0].payload).shape == (432, 768, 3)


@pytest.mark.parametrize(
    ("track", "zones"),
    [
        (("person",), ("Porch", "porch")),  # names that differ by case
        (("person",), ("前门", "后门")),  # nothing ASCII
        (("person",), ("z" * 40 + "-front", "z" * 40 + "-back")),  # alike in 40 characters
        (("teddy bear", "bear"), ("teddy",)),  # a label with a space, a zone and a label
    ],
)
def test_names_alike_as_ids_still_get_entities_of_their_own(
    track: tuple[str, ...], zones: tuple[str, ...]
) -> None:
    """Every label and zone keeps its own entities: none is lost to another's id."""
    publisher = MqttPublisher(MqttSettings(), "camapp-yard")  # never started
    channel = Channel(publisher, "camapp", "yard", ("camapp/yard/availability",))
    camera = ha.Camera(channel, 1, "ssd", (), counting=ha.Counting(track, zones))
    configs = ha.discovery_configs(camera, "homeassistant")
    wheres = len(track) * (1 + len(zones))  # each label, and each label in each zone
    triggers = len(track) * 2 * (1 + len(zones))  # appeared/left, entered/left each zone
    counting = [t for t in configs if "/count_" in t or "/occupied_" in t or "/trigger_" in t]
    assert len(counting) == 2 * wheres + triggers, sorted(configs)
    assert len({c["unique_id"] for c in configs.values() if "unique_id" in c}) == len(
        [c for c in configs.values() if "unique_id" in c]
    )


def test_frames_held_are_bounded_however_many_objects_are_tracked() -> None:
    """40 parked cars, each scoring a little better every frame: the snapshots never hold
    more than MAX_HELD captured frames (one per car before the bound)."""
    publisher = MqttPublisher(MqttSettings(), "camapp-lot")  # never started: it queues
    channel = Channel(publisher, "camapp", "lot", ("camapp/lot/availability",))
    objects = ObjectsSink(channel, ("car",), [], 2)
    shots = EventSnapshots(channel, FrameTap(), objects, 320)
    cars = [(0.02 * i + 0.001, 0.5, 0.02 * i + 0.015, 0.6) for i in range(40)]
    image = np.zeros((90, 160, 3), np.uint8)
    most = 0
    for n in range(60):
        scores = [0.6 + 0.3 * ((n + i) % 7 == 0) + n * 1e-4 for i in range(40)]  # now and then
        found = [Detection("car", s, box) for s, box in zip(scores, cars, strict=True)]
        result = Result(n, n / 10, n / 10, DetectionResult(found, 1.0, "ssd"), Frame(
            n, n / 10, image, n / 10, bgr=True))  # fmt: skip
        objects.send(result)
        shots.send(result)
        most = max(most, sum(best.frame is not None for best in shots._best.values()))
    assert len(objects.tracker.tracks) == 40
    assert most == MAX_HELD
    assert len(shots._best) > MAX_HELD  # the others' scores are still known


def test_a_paused_cameras_pictures_get_no_boxes_of_frames_long_gone() -> None:
    """The boxes of the last processed frame are drawn on the snapshot while the camera
    runs; while it is paused (frames captured, none processed), none are."""
    publisher = MqttPublisher(MqttSettings(), "camapp-p")  # never started: it queues
    channel = Channel(publisher, "camapp", "p", ("camapp/p/availability",))
    objects = ObjectsSink(channel, ("person",), [], 2)
    image = np.zeros((90, 160, 3), np.uint8)
    for n in range(4):  # confirmed after 3 frames
        found = DetectionResult([Detection("person", 0.9, (0.2, 0.2, 0.6, 0.9))], 1.0, "ssd")
        objects.send(Result(n, n, n, found, Frame(n, n, image, n, bgr=True)))
    controls = Controls()
    drawn = image.copy()
    objects_drawer(objects, controls)(drawn)
    assert drawn.any()  # the box
    controls.update({"paused": True})
    paused = image.copy()
    objects_drawer(objects, controls)(paused)
    assert not paused.any()
