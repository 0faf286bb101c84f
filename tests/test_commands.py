"""`set` commands that act: switch a running camera's model, save its next frame."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SHARED_MODELS, start_camapp
from tests.test_ha import looping, stop

SMALL = SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
NAME = "mobilenet_v1_0.25_128"  # its manifest name, which messages report


def test_a_running_camera_switches_model_without_a_restart_or_a_lost_frame(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, _ = photos_clip
    topics = ["camapp/porch/classification", "camapp/porch/config", "camapp/porch/error"]
    sub = subscriber_factory(broker.port, topics)
    args = [*looping(video, broker.port), "--no-drop", "--dataset", str(tmp_path / "ds")]
    proc = start_camapp(args, model_dir, cwd=tmp_path)
    try:
        sub.wait_for(lambda: len(sub.on(topics[0])) >= 10)
        sub.publish("camapp/porch/set", json.dumps({"model": "no-such-model"}))
        sub.wait_for(lambda: len(sub.on(topics[2])) == 1)  # refused; the camera keeps its own
        assert "model: model file not found" in json.loads(sub.on(topics[2])[0].payload)["error"]
        sub.publish("camapp/porch/set", json.dumps({"model": str(SMALL), "capture": "empty"}))
        sub.wait_for(lambda: len(sub.on(topics[1])) == 2)
        assert json.loads(sub.on(topics[1])[1].payload)["model"] == NAME
        sub.wait_for(lambda: json.loads(sub.on(topics[0])[-1].payload)["model"] == NAME)
        seen = len(sub.on(topics[0]))
        sub.wait_for(lambda: len(sub.on(topics[0])) >= seen + 10)
    finally:
        err = stop(proc)
    messages = [json.loads(m.payload) for m in sub.on(topics[0])]
    frames = [m["frame"] for m in messages]
    assert frames == list(range(len(frames)))  # in order, none lost across the switch
    models = [m["model"] for m in messages]
    switch = models.index(NAME)
    assert set(models[:switch]) == {"mobilenet_v2_int8"} and set(models[switch:]) == {NAME}
    [saved] = (tmp_path / "ds" / "empty").glob("*.jpg")
    sidecar = json.loads(saved.with_suffix(".json").read_text())
    assert sidecar["camera"] == "porch" and sidecar["label"] == "empty"
    assert "saved frame" in err and "classifying with" in err


def test_a_file_model_is_switched_back_to_by_the_name_home_assistant_shows(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, _ = photos_clip
    scene = tmp_path / "scene.tflite"
    scene.write_bytes(SMALL.read_bytes())  # a model of the user's own, known by its stem
    topics = ["camapp/porch/config", "camapp/porch/error"]
    sub = subscriber_factory(broker.port, topics)
    proc = start_camapp([*looping(video, broker.port), "--model", str(scene)], model_dir)
    try:
        sub.wait_for(lambda: len(sub.on(topics[0])) == 1)
        for name in ("mobilenet_v2_int8", "scene"):  # what the select offers, and sends
            sub.publish("camapp/porch/set", json.dumps({"model": name}))
            sub.wait_for(lambda n=name: json.loads(sub.on(topics[0])[-1].payload)["model"] == n)
    finally:
        stop(proc)
    assert sub.on(topics[1]) == []


def test_on_label_must_be_a_class_of_the_model(model_dir: Path, photos_clip) -> None:
    from tests.conftest import run_camapp
    from tests.test_errors import one_line_error

    video, _ = photos_clip
    proc = run_camapp(["run", "--source", str(video), "--on-label", "unicorn"], model_dir)
    one_line_error(proc, 2, "on_label 'unicorn' is not a class of mobilenet_v2_int8")
