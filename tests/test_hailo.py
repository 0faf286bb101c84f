"""The Hailo (AI Kit/HAT+) through a stand-in for picamera2's Hailo helper (tests/fake_hailo.py),
which runs the real MobileNetV2 on exactly the frames camapp hands it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest

from camapp.inference import loader
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, make_classifier
from tests.conftest import run_in_process as run
from tests.fake_hailo import NETWORK, HailoRig

LABELS = SHARED_MODELS / "imagenet_labels.txt"
PHOTOS = ["parrot.jpg", "hot_dog.jpg", "grace_hopper.bmp", "coffee.png"]


@pytest.fixture
def hef(tmp_path: Path) -> Path:
    path = tmp_path / "mobilenet_v2.hef"
    path.write_bytes(b"\x01HEF")  # read by HailoRT only
    return path


def test_photos_reach_the_network_as_litert_feeds_the_same_one(monkeypatch, hef) -> None:
    rig = HailoRig()
    rig.install(monkeypatch)
    setup = loader.plan(str(hef), str(LABELS))
    assert setup.backend == "hailo"  # chosen by the .hef alone
    on_hailo = loader.load(setup)
    on_cpu = make_classifier(NETWORK, LABELS.read_text().splitlines())
    for name in PHOTOS:
        image = cv2.imread(str(SHARED_MEDIA / name))
        expected, got = on_cpu.classify(image, bgr=True).top_k, on_hailo.classify(image, True).top_k
        assert got[0] == expected[0], name  # the same answer with the same score
        assert [p.score for p in got] == [p.score for p in expected], name  # (ties in any order)
    assert rig.frames[0] == ((224, 224, 3), "uint8")
    assert rig.runs == len(PHOTOS) + 1  # and the one run on loading, before any capture


def test_two_cameras_share_one_device_one_frame_at_a_time(
    monkeypatch, hef, tmp_path, broker, subscriber_factory, capsys
) -> None:
    rig = HailoRig(outputs=[(1, 1, 1001)])  # a rank-3 output: its size is what counts
    rig.install(monkeypatch)
    config = tmp_path / "two.toml"
    clips = {"lot": "car-detection.mp4", "room": "one-by-one-person-detection.mp4"}
    config.write_text(
        f'model = "{hef}"\nlabels = "{LABELS}"\nrealtime = false\ndrop = false\nmax_frames = 6\n'
        + "".join(
            f'[[cameras]]\ncamera_id = "{c}"\nsource = "{SHARED_MEDIA / f}"\n'
            for c, f in clips.items()
        )
    )
    sub = subscriber_factory(broker.port, ["camapp/+/classification"])
    code, err = run(["run", "--config", str(config), "--workers", "3",
                     "--mqtt-port", str(broker.port)], capsys)  # fmt: skip
    assert code == 0, err
    for camera in clips:
        topic = f"camapp/{camera}/classification"
        sub.wait_for(lambda t=topic: len(sub.on(t)) == 6)
        assert [json.loads(m.payload)["frame"] for m in sub.on(topic)] == list(range(6))
    # One device for 3 workers and 2 cameras; 12 frames, and one run on loading the network.
    assert rig.opened == 1 and rig.runs == 12 + 1
    assert rig.most_in_flight == 1  # never two frames at once
    assert rig.closed == 1  # released by the app as it stopped: the next process can open it


def test_a_command_releases_the_device_when_it_is_done(monkeypatch, hef, capsys) -> None:
    """No registry outlives its owner: `classify` loads the network once and, done, lets go."""
    rig = HailoRig()
    rig.install(monkeypatch)
    photos = [str(SHARED_MEDIA / name) for name in PHOTOS]
    code, err = run(["classify", "--model", str(hef), "--labels", str(LABELS), *photos], capsys)
    assert code == 0, err
    assert rig.opened == rig.closed == 1 and rig.runs == len(PHOTOS) + 1
    code, err = run(["classify", "--model", str(hef), "--labels", str(LABELS), *photos], capsys)
    assert code == 0 and rig.opened == rig.closed == 2  # a second command opens it afresh


@pytest.mark.parametrize(
    ("fault", "needles"),
    [
        ("missing", ("HAILO_OUT_OF_PHYSICAL_DEVICES", "hailortcli fw-control identify")),
        ("in_use", ("HAILO_DEVICE_IN_USE", "no other process using it")),
        ("no_hailo_all", ("sudo apt install hailo-all",)),
        ("detector", ("is not an image classifier",)),
        ("tflite_model", ("takes a compiled Hailo network (.hef)",)),
    ],
)
def test_set_up_problems_are_one_line_and_exit_2(monkeypatch, hef, capsys, fault, needles):
    rig = HailoRig(outputs=[(80, 5, 100), (20, 20, 255)] if fault == "detector" else None)
    rig.present = fault != "missing"
    rig.in_use = fault == "in_use"
    rig.install(monkeypatch)
    if fault == "no_hailo_all":
        monkeypatch.setitem(sys.modules, "picamera2.devices", None)
    model = ["--backend", "hailo", "--model", str(NETWORK)] if fault == "tflite_model" else [
        "--model", str(hef)]  # fmt: skip
    photo = str(SHARED_MEDIA / "parrot.jpg")
    code, err = run(["classify", *model, "--labels", str(LABELS), photo], capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("camapp: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert rig.runs == 0
