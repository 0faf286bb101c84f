"""The AI Camera (IMX500) through a stand-in for picamera2's IMX500 helper (tests/fake_imx500.py):
the sensor's scores reach MQTT ranked and labelled, the firmware goes before the camera opens,
and every set-up problem is one line with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from camapp.capture import imx500 as imx500_source
from camapp.config.schema import PiCameraSettings
from camapp.errors import ConfigError, SourceError
from camapp.inference import loader
from tests.conftest import SHARED_MODELS
from tests.conftest import run_in_process as run
from tests.fake_imx500 import Imx500Rig

LABELS = SHARED_MODELS / "imagenet_labels.txt"  # 1001 lines, "background" first


@pytest.fixture
def network(tmp_path: Path) -> Path:
    path = tmp_path / "imx500_network_mobilenet_v2.rpk"
    path.write_bytes(b"9464" + bytes(60))  # read by the sensor's firmware, never by camapp
    return path


def one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("camapp: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_camapp_run_publishes_what_the_sensor_computed(
    monkeypatch, network: Path, broker, subscriber_factory, capsys
) -> None:
    rig = Imx500Rig(classes=1001, softmax=True, loading_frames=3)
    rig.install(monkeypatch)
    sub = subscriber_factory(broker.port, ["camapp/cam0/classification"])
    code, err = run(
        ["run", "--source", "imx500", "--model", str(network), "--labels", str(LABELS),
         "--workers", "2", "--max-frames", "4", "--no-drop",  # a busy machine drops none
         "--mqtt-port", str(broker.port)], capsys,
    )  # fmt: skip
    assert code == 0, err
    sub.wait_for(lambda: len(sub.on("camapp/cam0/classification")) == 4)
    messages = [json.loads(m.payload) for m in sub.on("camapp/cam0/classification")]
    labels = LABELS.read_text().splitlines()
    logits = rig.output()
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert [m["frame"] for m in messages] == [0, 1, 2, 3]  # frames before the network ran: none
    for message in messages:
        assert message["label"] == labels[rig.top]  # chosen by the .rpk alone: no --backend
        assert message["score"] == round(float(expected[rig.top]), 4)  # softmax, as asked
        assert message["inference_ms"] == 6.25  # the sensor's DNN time, from its KPI metadata
        assert message["model"] == network.stem
    # The firmware was handed over before the camera was opened, its upload shown, then started.
    assert rig.events[:4] == ["firmware", "open", "progress", "start"]
    assert rig.events.count("firmware") == 1  # two workers and the source: one network
    assert rig.roi == (508, 0, 3040, 3040)  # crop "center": the sensor's centre, square


def classify_one(rig: Imx500Rig, network: Path, labels: Path | None, crop: str = "center"):
    """One frame from the stand-in sensor, ranked as a worker would."""
    setup = loader.plan(str(network), str(labels) if labels else None)
    classifier = loader.load(setup)  # hands the network to the sensor, as the app does first
    net = imx500_source.network(setup.devices, network)  # the one the backend opened
    source = imx500_source.Imx500Source(net, PiCameraSettings(), crop)
    try:
        frame = source.read()
    finally:
        source.close()
    assert frame is not None and frame.scores is not None
    return frame, classifier.rank(frame.scores, frame.inference_ms)


@pytest.mark.parametrize("classes", [1000, 1001])
def test_a_1000_class_output_skips_the_background_label(monkeypatch, network, classes) -> None:
    rig = Imx500Rig(classes=classes, top=90)
    rig.install(monkeypatch)
    frame, result = classify_one(rig, network, LABELS)
    labels = LABELS.read_text().splitlines()
    assert frame.scores.shape == (classes,)
    best = result.top_k[0]
    assert best.class_id == 90 and best.label == labels[90 + 1001 - classes]
    assert best.score == round(float(rig.output()[90]), 4)  # no softmax asked: scores as given


def test_labels_come_from_the_intrinsics_without_a_file(monkeypatch, network) -> None:
    names = [f"class {i}" for i in range(1000)]
    rig = Imx500Rig(classes=1000, top=7, labels=names)
    rig.install(monkeypatch)
    _, result = classify_one(rig, network, None, crop="stretch")
    assert result.top_k[0].label == "class 7"
    assert rig.roi == (0, 0, 4056, 3040)  # crop "stretch": the whole sensor
    assert "roi" not in rig.events


def test_picamera2_0_3_35_runs_as_a_user_without_debugfs(monkeypatch, network) -> None:
    """The service user cannot read /sys/kernel/debug: from 0.3.35 that only hides the bar."""
    rig = Imx500Rig(debugfs=False)
    rig.install(monkeypatch)
    _, result = classify_one(rig, network, LABELS)
    assert result.top_k[0].class_id == rig.top and "firmware" in rig.events


def test_the_sensor_runs_one_network_for_its_owner(monkeypatch, network, tmp_path) -> None:
    Imx500Rig().install(monkeypatch)
    other = tmp_path / "imx500_network_efficientnet.rpk"
    other.write_bytes(network.read_bytes())
    setup = loader.plan(str(network), str(LABELS))
    loader.load(setup)
    second = loader.plan(str(other), str(LABELS), devices=setup.devices)  # as a `set` would
    with pytest.raises(ConfigError, match=f"already runs {network.name}: one network"):
        loader.load(second)


def test_a_network_that_never_runs_is_a_source_error(monkeypatch, network) -> None:
    rig = Imx500Rig(loading_frames=10**6)
    rig.install(monkeypatch)
    monkeypatch.setattr(imx500_source, "NETWORK_TIMEOUT", 0.0)
    setup = loader.plan(str(network), str(LABELS))
    loader.load(setup)
    source = imx500_source.Imx500Source(imx500_source.network(setup.devices, network))
    with pytest.raises(SourceError, match="no network output"):
        source.read()
    source.close()
    assert not rig.unreleased  # every request without scores was given back


@pytest.mark.parametrize(
    ("fault", "needles"),
    [
        ("missing", ("Requested camera dev-node not found", "rpicam-hello --list-cameras")),
        ("busy", ("Device or resource busy", "not used by another process")),
        ("detector", ("is a object detection network, not a classifier",)),
        ("no_picamera2_devices", ("sudo apt install imx500-all",)),
        # picamera2 0.3.34 as the service user: its IMX500() would raise PermissionError on
        # debugfs, which the device hint would blame on another process.
        ("old_picamera2", ("older than 0.3.35", "User=camapp", "--only-upgrade python3-picamera2")),
        ("usb_source", ("use source 'imx500' with an IMX500 network",)),
        ("tflite_model", ("use source 'imx500' with an IMX500 network",)),
        ("no_labels", ("has no labels of its own; pass --labels",)),
    ],
)
def test_set_up_problems_are_one_line_and_exit_2(
    monkeypatch, network, capsys, fault, needles
) -> None:
    old = fault == "old_picamera2"
    rig = Imx500Rig(
        task="object detection" if fault == "detector" else "classification",
        old_picamera2=old,
        debugfs=not old,
    )
    rig.present = fault != "missing"
    rig.busy = fault == "busy"
    rig.install(monkeypatch)
    if fault == "no_picamera2_devices":
        monkeypatch.setitem(sys.modules, "picamera2.devices", None)
    source = "usb:0" if fault == "usb_source" else "imx500"
    model = str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite" if fault == "tflite_model"
                else network)  # fmt: skip
    labels = [] if fault == "no_labels" else ["--labels", str(LABELS)]
    code, err = run(["run", "--source", source, "--model", model, *labels], capsys)
    assert code == 2, err
    one_line(err, *needles)
    assert "open" not in rig.events  # nothing reached the camera


def test_the_imx500_backend_cannot_classify_a_picture(monkeypatch, network) -> None:
    Imx500Rig().install(monkeypatch)
    classifier = loader.load(loader.plan(str(network), str(LABELS)))
    with pytest.raises(ConfigError, match="classifies on the AI Camera"):
        classifier.classify(np.zeros((224, 224, 3), np.uint8))
