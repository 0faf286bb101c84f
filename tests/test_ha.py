"""Home Assistant side of `camapp run`: discovery, the debounced state, control over `set`.

Real broker, real model, real clips; camapp runs as a child process like under systemd.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from pathlib import Path

from camapp.publish.commands import clip
from tests.conftest import run_camapp, start_camapp


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then the exit must be clean: 0 and no traceback. Returns stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err


def looping(video: Path, port: int) -> list[str]:
    return [
        "run",
        "--source",
        str(video),
        "--loop",
        "--camera-id",
        "porch",
        "--mqtt-port",
        str(port),
    ]


def expected_entities() -> set[tuple[str, str]]:
    """What a camera replaying a file with the ImageNet model announces on this machine (a
    file never goes away: no source problem entity)."""
    from camapp.governor.sensors import Sensors

    entities = {("sensor", e) for e in ("label", "score", "classification_rate", "cpu", "power")}
    if Sensors().temperature().value is not None:  # left out on a board without a sensor
        entities.add(("sensor", "temperature"))
    entities |= {("switch", "paused"), ("image", "snapshot")}
    return entities | {("number", "threshold"), ("number", "cpu_budget"), ("select", "model")}


def test_discovery_configs_are_retained_reannounced_and_removable(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    expected = expected_entities()
    proc = start_camapp(looping(video, broker.port), model_dir)
    try:
        watch = subscriber_factory(broker.port, ["camapp/porch/classification"])
        watch.wait_for(lambda: len(watch.messages) >= 1)
        late = subscriber_factory(broker.port, ["homeassistant/+/camapp-porch/+/config"])
        late.wait_for(lambda: len(late.messages) == len(expected))
        configs = {m.topic: json.loads(m.payload) for m in late.messages}
        assert all(m.retain for m in late.messages)
        assert {tuple(t.split("/")[1:4:2]) for t in configs} == expected
        assert len({c["unique_id"] for c in configs.values()}) == len(expected)
        for config in configs.values():
            assert config["availability_topic"] == "camapp/porch/availability"
            assert config["qos"] == 1  # Home Assistant subscribes as camapp publishes
            device = config["device"]
            assert device["identifiers"] == ["camapp-porch"]
            assert {"name", "model", "sw_version", "manufacturer"} <= set(device)
            assert config["origin"]["name"] == "camapp"
        label = configs["homeassistant/sensor/camapp-porch/label/config"]
        assert "options" not in label  # 1001 classes: a plain sensor, not an enum
        score = configs["homeassistant/sensor/camapp-porch/score/config"]
        assert "state_class" not in score  # no long-term statistics of a confidence
        select = configs["homeassistant/select/camapp-porch/model/config"]
        assert "mobilenet_v2_int8" in select["options"]

        # Home Assistant's birth message: every config again.
        late.publish("homeassistant/status", "online")
        late.wait_for(lambda: len(late.messages) == 2 * len(expected))
        assert {m.topic for m in late.messages[len(expected) :]} == set(configs)
    finally:
        stop(proc)

    proc = run_camapp(
        ["ha", "remove", "--camera-id", "porch", "--mqtt-port", str(broker.port)], model_dir
    )
    assert proc.returncode == 0, proc.stderr
    after = subscriber_factory(broker.port, ["homeassistant/#", "camapp/porch/availability"])
    after.wait_for(lambda: len(after.on("camapp/porch/availability")) == 1)
    assert after.on("camapp/porch/availability")[0].payload == b"offline"
    assert [m for m in after.messages if m.topic.startswith("homeassistant/")] == []


def test_state_changes_once_per_scene_not_once_per_frame(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, meta = photos_clip
    topic = "camapp/porch/classification"
    sub = subscriber_factory(broker.port, ["camapp/porch/state", topic])
    replay = ["run", "--source", str(video), "--no-realtime", "--no-drop", "--camera-id", "porch"]
    proc = run_camapp(
        [*replay, "--threshold", "0.3", "--state-frames", "3", "--mqtt-port", str(broker.port)],
        model_dir,
    )
    assert proc.returncode == 0, proc.stderr
    sub.wait_for(lambda: len(sub.on(topic)) == meta["frames"])
    states = [json.loads(m.payload) for m in sub.on("camapp/porch/state")]
    assert len(states) == len(meta["segments"]), states
    for state, segment in zip(states, meta["segments"], strict=True):
        assert set(state) == {"label", "score", "since"}
        assert state["label"] in segment["labels"] and state["score"] >= 0.3
    ts = {m["frame"]: m["ts"] for m in (json.loads(m.payload) for m in sub.on(topic))}
    # `since` is the capture time of the first frame of the agreeing run: the scene's first.
    assert [s["since"] for s in states] == [ts[seg["first"]] for seg in meta["segments"]]

    # The last state stays retained for whoever subscribes later.
    late = subscriber_factory(broker.port, ["camapp/porch/state"])
    late.wait_for(lambda: len(late.messages) == 1)
    assert late.messages[0].retain and json.loads(late.messages[0].payload) == states[-1]


def test_threshold_keeps_unsure_scenes_out_of_the_state(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    sub = subscriber_factory(broker.port, ["camapp/porch/state", "camapp/porch/availability"])
    replay = ["run", "--source", str(video), "--no-realtime", "--no-drop", "--camera-id", "porch"]
    proc = run_camapp([*replay, "--threshold", "0.7", "--mqtt-port", str(broker.port)], model_dir)
    assert proc.returncode == 0, proc.stderr
    sub.wait_for(
        lambda: [m.payload for m in sub.on("camapp/porch/availability")][-1:] == [b"offline"]
    )
    # Only the espresso scores 0.7 or more; the uniform and the cat are unsure scenes, which
    # the state says are `none` rather than keeping a label the camera no longer sees.
    states = [json.loads(m.payload) for m in sub.on("camapp/porch/state")]
    assert [s["label"] for s in states if s["label"] is not None] == ["espresso"]
    labels = [s["label"] for s in states]
    assert labels[0] is None and all(a != b for a, b in itertools.pairwise(labels)), labels
    assert all(s["score"] is None for s in states if s["label"] is None)


GOOD = {"cpu_budget": 40, "paused": False, "threshold": 0.6, "stride": 2}
BAD = [
    (b"not json", "invalid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"bogus": 1}', "unknown setting 'bogus'"),
    (b'{"stride": 0}', "stride: must be between 1 and 1000"),
    (b'{"threshold": "high"}', "threshold: must be a number"),
    (b'{"paused": "yes"}', "paused: must be true or false"),
    (b'{"stride": 3, "cpu_budget": 500}', "cpu_budget"),  # all or nothing: stride stays 2
    (b"\xff\xfe", "invalid JSON"),
    (b"[" * 60_000, "invalid JSON: maximum recursion depth"),  # nested too deep to parse
]


def test_set_commands_apply_or_report_and_the_run_carries_on(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    topics = ["camapp/porch/config", "camapp/porch/error", "camapp/porch/classification"]
    sub = subscriber_factory(broker.port, topics)
    proc = start_camapp(looping(video, broker.port), model_dir)
    try:
        sub.wait_for(lambda: len(sub.on("camapp/porch/config")) == 1)
        initial = json.loads(sub.on("camapp/porch/config")[0].payload)
        assert initial == {
            "cpu_budget": None,
            "power_budget": None,
            "temp_limit": None,
            "paused": False,
            "stride": 1,
            "threshold": 0.5,
            "model": "mobilenet_v2_int8",
        }

        sub.publish("camapp/porch/set", json.dumps(GOOD))
        sub.wait_for(lambda: len(sub.on("camapp/porch/config")) == 2)
        applied = json.loads(sub.on("camapp/porch/config")[1].payload)
        assert applied == {**initial, **GOOD}
        assert sub.on("camapp/porch/config")[1].retain == 0  # live delivery; retained below

        for payload, needle in BAD:
            before = len(sub.on("camapp/porch/error"))
            sub.publish("camapp/porch/set", payload)
            sub.wait_for(lambda b=before: len(sub.on("camapp/porch/error")) == b + 1)
            error = json.loads(sub.on("camapp/porch/error")[-1].payload)
            assert needle in error["error"], error
            assert error["payload"] == clip(payload.decode("utf-8", errors="replace"))
        assert len(sub.on("camapp/porch/config")) == 2  # nothing applied by a bad command

        # Still classifying, now 1 frame in 2.
        seen = len(sub.on("camapp/porch/classification"))
        sub.wait_for(lambda: len(sub.on("camapp/porch/classification")) >= seen + 5)
        frames = [json.loads(m.payload)["frame"] for m in sub.on("camapp/porch/classification")]
        assert all(f % 2 == 0 for f in frames[-3:]), frames[-3:]
    finally:
        err = stop(proc)
    assert "rejected command" in err
    late = subscriber_factory(broker.port, ["camapp/porch/config"])
    late.wait_for(lambda: len(late.messages) == 1)
    assert late.messages[0].retain and json.loads(late.messages[0].payload) == applied
