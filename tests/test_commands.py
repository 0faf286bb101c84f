"""`set` commands that act: switch a running camera's model, save its next frame."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from camapp.runtime.actions import NOT_OFFERED
from tests.conftest import SHARED_MODELS, start_camapp
from tests.mqtt_helpers import Subscriber
from tests.test_ha import looping, stop
from tests.test_web_labelling import until

SMALL = SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
NAME = "mobilenet_v1_0.25_128"  # its manifest name, which messages report


def test_a_running_camera_switches_model_without_a_restart_or_a_lost_frame(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, _ = photos_clip
    topics = ["camapp/porch/classification", "camapp/porch/config", "camapp/porch/error"]
    sub = subscriber_factory(broker.port, topics)
    args = [*looping(video, broker.port), "--no-drop", "--dataset", str(tmp_path / "ds"),
            "--model-folders", str(SHARED_MODELS)]  # fmt: skip
    proc = start_camapp(args, model_dir, cwd=tmp_path)
    try:
        sub.wait_for(lambda: len(sub.on(topics[0])) >= 10)
        sub.publish("camapp/porch/set", json.dumps({"model": "no-such-model"}))
        sub.wait_for(lambda: len(sub.on(topics[2])) == 1)  # refused; the camera keeps its own
        assert json.loads(sub.on(topics[2])[0].payload)["error"] == NOT_OFFERED
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


def send(sub: Subscriber, camera: str, command: dict[str, Any]) -> str | None:
    """Publish one command; the refusal it gets on `error`, or None once `config` says it
    was applied."""
    config, error = f"camapp/{camera}/config", f"camapp/{camera}/error"
    before = len(sub.on(config)), len(sub.on(error))
    sub.publish(f"camapp/{camera}/set", json.dumps(command))
    sub.wait_for(lambda: (len(sub.on(config)), len(sub.on(error))) != before)
    errors = sub.on(error)
    return json.loads(errors[-1].payload)["error"] if len(errors) > before[1] else None


def test_captures_are_limited_in_rate_per_class_and_by_free_disk(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    """A flood of `capture` commands saves what the limits allow and refuses the rest on
    `error`, each with its reason: none is dropped silently."""
    video, _ = photos_clip
    config = tmp_path / "cams.toml"
    config.write_text(
        f"loop = true\nsnapshot_interval = 0\n[mqtt]\nport = {broker.port}\n"
        f'[[cameras]]\ncamera_id = "porch"\nsource = "{video}"\n'
        f'dataset = "{tmp_path / "porch"}"\ncapture_per_minute = 3\ndataset_max_images = 2\n'
        f'[[cameras]]\ncamera_id = "door"\nsource = "{video}"\n'
        f'dataset = "{tmp_path / "door"}"\ndataset_min_free_mb = 1000000000\n'
    )
    sub = subscriber_factory(broker.port, ["camapp/+/config", "camapp/+/error"])
    proc = start_camapp(["run", "--config", str(config)], model_dir)

    def saved(label: str) -> int:
        return len(list((tmp_path / "porch" / label).glob("*.jpg")))

    try:
        sub.wait_for(lambda: len(sub.on("camapp/porch/config")) == 1)
        sub.wait_for(lambda: len(sub.on("camapp/door/config")) == 1)
        for n in (1, 2):
            assert send(sub, "porch", {"capture": "empty"}) is None
            until(lambda n=n: saved("empty") == n)
        refused = send(sub, "porch", {"capture": "empty"})
        assert refused == "capture: class empty holds 2 images, dataset_max_images (2)"
        assert send(sub, "porch", {"capture": "person"}) is None  # the third this minute
        until(lambda: saved("person") == 1)
        flood = [send(sub, "porch", {"capture": "person"}) for _ in range(20)]
        assert flood == ["capture: more than 3 a minute (capture_per_minute)"] * 20
        refused = send(sub, "door", {"capture": "open"})
        assert refused is not None and "under dataset_min_free_mb (1000000000 MiB)" in refused
    finally:
        stop(proc)
    assert (saved("empty"), saved("person")) == (2, 1)
    assert not (tmp_path / "door").exists()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
        / 1024
    )


def sparse_model(path: Path, size: int) -> Path:
    """A file of `size` bytes with a real model's first bytes (a valid TFLite header), the rest
    a hole: big on paper, nothing on disk."""
    path.write_bytes(SMALL.read_bytes()[:4096])
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    return path


def test_set_models_come_only_from_allowed_places_and_load_off_the_network_thread(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, _ = photos_clip
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    huge = sparse_model(allowed / "huge.tflite", 1900 << 20)
    mid = sparse_model(allowed / "mid.tflite", 280 << 20)  # under the cap; takes a while to read
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(SMALL.read_bytes())  # a valid model, in no allowed folder
    args = [*looping(video, broker.port), "--model-folders", str(allowed), "--model-max-mb", "300"]
    sub = subscriber_factory(broker.port, ["camapp/porch/#"])
    proc = start_camapp(args, model_dir, cwd=tmp_path)
    try:
        sub.wait_for(lambda: len(sub.on("camapp/porch/config")) == 1)
        # Whether the file exists, is a folder, or a model: one answer, nothing to probe.
        for probe in ("/etc/passwd", "/etc", "/no/such.tflite", "../../etc/passwd",
                      str(outside), "outside.tflite", str(allowed / ".." / "outside.tflite"),
                      "no-such-model"):  # fmt: skip
            assert send(sub, "porch", {"model": probe}) == NOT_OFFERED, probe
        refused = send(sub, "porch", {"model": str(huge)})
        assert refused == "model: huge.tflite is 1900 MiB, over model_max_mb (300 MiB)"

        # The network thread goes on while a model loads: a threshold sent after a slow
        # switch is applied first, and the camera keeps classifying and publishing.
        seen = len(sub.on("camapp/porch/classification"))
        for _ in range(3):  # one loads, one waits, the third is refused
            sub.publish("camapp/porch/set", json.dumps({"model": str(mid)}))
        sub.publish("camapp/porch/set", json.dumps({"threshold": 0.4}))
        sub.wait_for(lambda: len(sub.on("camapp/porch/error")) == 12)
        sub.wait_for(lambda: len(sub.on("camapp/porch/classification")) >= seen + 5)
        peak = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    answers = [(m.topic.rsplit("/", 1)[1], json.loads(m.payload)) for m in sub.messages
               if m.topic in ("camapp/porch/config", "camapp/porch/error")][10:]  # fmt: skip
    assert [kind for kind, _ in answers] == ["error", "config", "error", "error"], answers
    assert "another switch waits" in answers[0][1]["error"]
    assert answers[1][1]["threshold"] == 0.4 and answers[1][1]["model"] == "mobilenet_v2_int8"
    assert all("mid.tflite" in a["error"] and "corrupt" in a["error"] for _, a in answers[2:])
    assert peak < 1000, f"peak RSS {peak:.0f} MiB: the 1.9 GB file was read"


def test_model_names_no_file_can_have_are_refused_on_error(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    """A name the file system refuses (longer than a file name may be, in the models folder
    a `set` may name files of; a NUL; a lone surrogate) gets its one line on `error`, never
    a traceback and no answer at all."""
    video, _ = photos_clip
    sub = subscriber_factory(broker.port, ["camapp/porch/config", "camapp/porch/error"])
    proc = start_camapp(looping(video, broker.port), model_dir)
    try:
        sub.wait_for(lambda: len(sub.on("camapp/porch/config")) == 1)
        refused = send(sub, "porch", {"model": str(model_dir / ("a" * 5000))})
        assert refused is not None and refused.startswith("model: cannot read "), refused
        assert refused.endswith(": File name too long"), refused
        for name in ("a\u0000b", "\ud800", str(model_dir / "\ud800.tflite")):
            assert send(sub, "porch", {"model": name}) == NOT_OFFERED, name
    finally:
        err = stop(proc)
    assert "command failed" not in err
