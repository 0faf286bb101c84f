"""A detector camera's zones set at run time over `set`: the real clip of people walking in,
the real SSD, the real mosquitto and a real subscriber. Bad zones are refused on `error`
with the settings' own words; good ones move the zones the tracked objects are published
in, from one frame on, and the retained state follows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camapp import models
from camapp.detect.track import Tracker
from camapp.detect.zones import parse_zones
from camapp.errors import EXIT_USAGE
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp, start_camapp
from tests.test_commands import send
from tests.test_ha import stop

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
RIGHT = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]  # the zone the camera starts with
ALL = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
HA_COUNTS = "homeassistant/sensor/camapp-porch/+/config"
HA_RIGHT = HA_COUNTS.replace("+", "count_right_person")
LABELS = {"person": 0, "car": 0, "dog": 0, "cat": 0}
BAD = [
    ({"zones": [{"name": "a", "points": [[0, 0], [1, 1]]}]},
     r"^zones: zone 'a': needs at least 3 points, got 2$"),
    ({"zones": [{"name": "a", "points": [[0, 0], [1, 0], [1.5, 1]]}]},
     r"^zones: zone 'a': point 3 \(1.5, 1\) is outside \[0, 1\]"),
    ({"zones": [{"name": "a", "points": ALL}, {"name": "a", "points": RIGHT}]},
     r"^zones: zone 'a' is defined more than once$"),
    ({"zones": [{"name": "", "points": ALL}]}, r"^zones: zone name must be a non-empty string"),
    ({"zones": [{"name": "n" * 65, "points": ALL}]},
     r"^zones: zone name must be at most 64 characters, got 'nnnn"),
    ({"zones": {"name": "a", "points": ALL}}, r"^zones: must be a list of "),
    ({"zones": [{"name": "a", "points": ALL, "colour": "red"}]}, r"^zones: must be a list of "),
    ({"zones": [{"name": "a", "points": [[0, 0], [1, 0], [10**400, 1]]}]},
     r"^zones: zone 'a': points must be \[x, y\] pairs of numbers$"),
    ({"zones": [{"name": "a", "points": [[0.5, 0.5]] * 101}]},
     r"^zones: zone 'a': needs at most 100 points, got 101$"),
    ({"zones": [{"name": f"z{i}", "points": ALL} for i in range(33)]},
     r"^zones: at most 32 zones, got 33$"),
    ({"zones": [], "stride": 0}, r"^stride: "),  # all or nothing: the good part is not applied
]  # fmt: skip


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("detectors")
    models.fetch("ssd_mobilenet_v1_coco", folder, mirror=SHARED_MODELS)
    return folder


def _phases(person: dict[str, Any]) -> set[int]:
    """Which zone sets (0: RIGHT from the config, 1: ALL, 2: none) a published person's
    zones agree with, by where its feet are."""
    x1, _, x2, _ = person["box"]
    each = (["right"] if (x1 + x2) / 2 > 0.6 else [], ["all"], [])
    return {i for i, zones in enumerate(each) if person["zones"] == zones}


def test_set_zones_moves_the_published_zones_and_bad_ones_are_refused(
    detectors: Path, broker, subscriber_factory, tmp_path: Path
) -> None:
    config = tmp_path / "zones.toml"
    config.write_text(f'[[zones]]\nname = "right"\npoints = {json.dumps(RIGHT)}\n')
    sub = subscriber_factory(broker.port, ["camapp/porch/#", HA_COUNTS])
    args = ["run", "--config", str(config), "--source", str(CLIP), "--loop", "--model",
            "ssd_mobilenet_v1_coco", "--camera-id", "porch", "--stride", "3",
            "--state-frames", "3", "--mqtt-port", str(broker.port)]  # fmt: skip
    proc = start_camapp(args, detectors)
    objects, state = "camapp/porch/objects", "camapp/porch/state"

    def persons() -> list[dict[str, Any]]:
        return [o for m in sub.on(objects) for o in json.loads(m.payload)["objects"]]

    def zones_of_state() -> dict[str, Any] | None:
        return json.loads(sub.on(state)[-1].payload)["zones"] if sub.on(state) else None

    try:
        sub.wait_for(lambda: zones_of_state() is not None)  # the zone of the config, counted
        assert zones_of_state() == {"right": LABELS}
        for command, why in BAD:
            refused = send(sub, "porch", command)
            assert refused is not None and re.search(why, refused), (command, refused)
        [first] = sub.on("camapp/porch/config")  # nothing was applied
        assert json.loads(first.payload)["zones"] == [{"name": "right", "points": RIGHT}]
        assert send(sub, "porch", {"zones": [{"name": "all", "points": ALL}]}) is None
        applied = json.loads(sub.on("camapp/porch/config")[-1].payload)
        assert applied["zones"] == [{"name": "all", "points": ALL}] and applied["stride"] == 3
        sub.wait_for(lambda: any(p["zones"] == ["all"] for p in persons()))
        # Home Assistant's entities follow: the new zone's announced, the old zone's removed.
        sub.wait_for(lambda: bool(sub.on(HA_COUNTS.replace("+", "count_all_person"))))
        sub.wait_for(lambda: any(m.payload == b"" for m in sub.on(HA_RIGHT)))
        sub.wait_for(lambda: zones_of_state() == {"all": {**LABELS, "person": 1}})
        assert send(sub, "porch", {"zones": []}) is None  # no zones at all
        sub.wait_for(lambda: zones_of_state() == {})
        # A person published since, in no zone (the clip loops: one comes back if gone).
        since = len(persons())
        sub.wait_for(lambda: any(p["zones"] == [] for p in persons()[since:]))
    finally:
        stop(proc)
    # Every message agrees with one zone set, and the sets follow each other in the order
    # they were sent: the switch lands between two frames, never back.
    phase = 0
    for message in sub.on(objects):
        for person in json.loads(message.payload)["objects"]:
            later = {p for p in _phases(person) if p >= phase}
            assert later, (phase, person)
            phase = min(later)
    assert phase == 2
    assert all(m["counts"]["person"] == len(m["objects"])
               for m in map(json.loads, (m.payload for m in sub.on(objects))))  # fmt: skip


def test_new_zones_place_every_live_track_at_once() -> None:
    """A zone change places the tracks where their boxes stand now, missed ones too (a
    parked car the detector did not see in that frame), with an `update` event for each
    confirmed track whose zones changed."""
    tracker = Tracker(parse_zones([("right", RIGHT)]))
    car, person = [0.1, 0.2, 0.3, 0.6], [0.7, 0.2, 0.9, 0.9]
    for frame in range(3):
        tracker.update(frame, frame / 10, np.array([car, person]), np.array([0.9, 0.8]),
                       ["car", "person"])  # fmt: skip
    tracker.update(3, 0.3, np.array([person]), np.array([0.8]), ["person"])  # the car missed
    assert [t.zones for t in tracker.tracks] == [(), ("right",)]
    events = tracker.set_zones(parse_zones([("left", [[0, 0], [0.5, 0], [0.5, 1], [0, 1]])]), 4)
    assert [(e.type, e.label, e.zones, e.frame) for e in events] == [
        ("update", "car", ("left",), 4),
        ("update", "person", (), 4),
    ]
    assert [t.zones for t in tracker.tracks] == [("left",), ()]
    # No zones: the car leaves its zone; the person's, none already, makes no event.
    assert [(e.label, e.zones) for e in tracker.set_zones([], 5)] == [("car", ())]


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ([(f"z{i}", ALL) for i in range(33)], "zones: at most 32 zones, got 33"),
        ([("n" * 65, ALL)], "zones.0.name: must be at most 64 characters"),
    ],
)
def test_zone_bounds_in_a_config_file_are_one_line(
    zones: list[tuple[str, list[list[float]]]], message: str, detectors: Path, tmp_path: Path
) -> None:
    """The bounds a `set` meets are the settings' own: a config file meets them too."""
    config = tmp_path / "zones.toml"
    config.write_text("".join(f'[[zones]]\nname = "{n}"\npoints = {p}\n' for n, p in zones))
    proc = run_camapp(["run", "--config", str(config), "--source", str(CLIP), "--model",
                       "ssd_mobilenet_v1_coco", "--mqtt-port", "1"], detectors)  # fmt: skip
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"camapp: error: {config}: {message}"), line
