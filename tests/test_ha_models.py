"""Home Assistant and the models a camera knows: every model it has run or has trained into
its dataset folder stays selectable, their entities outlive a switch, and `ha remove` deletes
whatever the camera announced. Real trained models, real broker, camapp as a child process."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from camapp.training import TrainSettings, train
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp, start_camapp
from tests.test_commands import send
from tests.test_ha import looping, stop

SMALL = SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite"
CONFIGS = "homeassistant/+/camapp-porch/+/config"


def photos(root: Path, classes: dict[str, list[str]]) -> Path:
    """A dataset of real photos, each class from its own photos turned four ways."""
    turns = (None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)
    for label, names in classes.items():
        (root / label).mkdir(parents=True)
        for name in names:
            image = cv2.resize(cv2.imread(str(SHARED_MEDIA / name)), (96, 96))
            for n, turn in enumerate(turns):
                turned = image if turn is None else cv2.rotate(image, turn)
                cv2.imwrite(str(root / label / f"{Path(name).stem}-{n}.png"), turned)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera's dataset folder with two models trained into it: `room` (empty, person),
    which the camera starts with, and `door` (closed, open), which it has never run."""
    root = tmp_path_factory.mktemp("porch") / "dataset"
    photos(root, {"empty": ["coffee.png", "owl.jpg"], "person": ["grace_hopper.bmp"]})
    settings = TrainSettings(base=str(SMALL), augment=0, threads=1)
    train(root, root / "room.tflite", settings)
    other = photos(root.parent / "door", {"closed": ["cat.bmp"], "open": ["hot_dog.jpg"]})
    train(other, root / "door.tflite", settings)
    return root


def retained(broker_port: int, subscriber_factory) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Object id -> config of every discovery config the broker retains for the camera."""
    sub = subscriber_factory(broker_port, [CONFIGS, "homeassistant/ready"])
    sub.publish("homeassistant/ready", "marker")  # comes back after every retained message
    sub.wait_for(lambda: bool(sub.on("homeassistant/ready")))
    return {m.topic.split("/")[3]: json.loads(m.payload) for m in sub.messages
            if m.topic != "homeassistant/ready"}  # fmt: skip


def test_every_model_the_camera_knows_stays_selectable_and_ha_remove_clears_all(
    broker, subscriber_factory, model_dir: Path, photos_clip, dataset: Path
) -> None:
    video, _ = photos_clip
    args = [*looping(video, broker.port), "--model", str(dataset / "room.tflite"),
            "--dataset", str(dataset)]  # fmt: skip
    watch = subscriber_factory(broker.port, ["camapp/porch/config", "camapp/porch/error"])
    proc = start_camapp(args, model_dir)
    try:
        watch.wait_for(lambda: len(watch.on("camapp/porch/config")) == 1)
        watch.wait_for(lambda: "capture_person" in retained(broker.port, subscriber_factory))
        start = retained(broker.port, subscriber_factory)
        assert {"room", "door", "mobilenet_v2_int8"} <= set(start["model"]["options"])
        # Each option, sent back as Home Assistant sends it, switches the camera.
        for name in ("mobilenet_v2_int8", "room", "door", "mobilenet_v2_int8"):
            assert send(watch, "porch", {"model": name}) is None, name
        configs = retained(broker.port, subscriber_factory)
        assert watch.on("camapp/porch/error") == []
    finally:
        stop(proc)
    # After a switch to ImageNet, room and door are still offered, and the binary sensor and
    # every capture button are still there for automations.
    options = configs["model"]["options"]
    assert options[0] == "mobilenet_v2_int8" and {"room", "door"} <= set(options)
    buttons = {key for key in configs if key.startswith("capture_")}
    assert buttons == {"capture_empty", "capture_person", "capture_closed", "capture_open"}
    assert "detected" in configs

    proc = run_camapp(["ha", "remove", "--camera-id", "porch", "--mqtt-port", str(broker.port)],
                      model_dir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert retained(broker.port, subscriber_factory) == {}
