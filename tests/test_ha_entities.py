"""What Home Assistant is told about a camera, by the model it runs."""

from __future__ import annotations

import json

from camapp.config.schema import HaSettings, MqttSettings
from camapp.publish import ha
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.topics import Channel


def camera(labels: tuple[str, ...], **options: object) -> dict[str, dict]:
    publisher = MqttPublisher(MqttSettings(), "camapp-garage")  # never started
    channel = Channel(publisher, "camapp", "garage", ("camapp/garage/availability",))
    described = ha.Camera(channel, 2, "occupancy", labels, **options)  # type: ignore[arg-type]
    return {
        topic.split("/", 2)[2].removeprefix("camapp-garage/").removesuffix("/config"): config
        for topic, config in ha.discovery_configs(described, "homeassistant").items()
    }


def test_a_two_class_model_is_a_binary_sensor_and_an_enum() -> None:
    configs = camera(
        ("closed", "open"), buttons=("closed", "open"), device_class="garage_door", area="Garage"
    )
    detected = configs["detected"]
    assert detected["device_class"] == "garage_door" and detected["name"] == "Open"
    assert "'ON' if value_json.label == 'open'" in detected["value_template"]
    # Available while its model runs: a switch to another leaves it, unavailable.
    *online, running = detected["availability"]
    assert online == [{"topic": "camapp/garage/availability"}]
    assert detected["availability_mode"] == "all" and running["topic"] == "camapp/garage/config"
    assert "value_json.model == 'occupancy'" in running["value_template"]
    label = configs["label"]
    assert label["device_class"] == "enum" and label["options"] == ["closed", "open", "none"]
    # A trained model's classes are the user's own: a button saves a frame of each.
    press = {
        k: json.loads(c["payload_press"]) for k, c in configs.items() if k.startswith("capture_")
    }
    assert press == {"capture_closed": {"capture": "closed"}, "capture_open": {"capture": "open"}}
    assert all(
        c["qos"] == 2 and c["device"]["suggested_area"] == "Garage" for c in configs.values()
    )


def test_the_on_label_can_be_chosen_and_imagenet_gets_no_buttons() -> None:
    configs = camera(("person", "empty"), on_label="person")
    assert "== 'person'" in configs["detected"]["value_template"]
    assert not any(key.startswith("capture_") for key in configs)  # not a trained model
    many = camera(tuple(f"class {n}" for n in range(1001)), temperature=False)
    assert "detected" not in many and "options" not in many["label"]
    assert "temperature" not in many  # no sensor on this board: no entity stuck at unknown


def test_controls_send_what_the_set_topic_takes() -> None:
    configs = camera(("closed", "open"), models=("mobilenet_v2_int8",))
    paused = configs["paused"]
    assert json.loads(paused["payload_on"]) == {"paused": True}
    assert paused["command_topic"] == "camapp/garage/set"
    assert paused["state_topic"] == "camapp/garage/config"
    assert configs["threshold"]["command_template"] == '{"threshold": {{ value }}}'
    assert configs["model"]["options"] == ["occupancy", "mobilenet_v2_int8"]
    assert configs["snapshot"]["image_topic"] == "camapp/garage/snapshot"


def test_only_what_the_camera_can_say_is_announced() -> None:
    configs = camera(
        ("closed", "(other)"), buttons=("closed", "(other)"), live=False, snapshots=False
    )
    assert "source_problem" not in configs  # a file never goes away
    assert "snapshot" not in configs  # snapshot_interval = 0
    assert [key for key in configs if key.startswith("capture_")] == ["capture_closed"]


def test_a_lost_source_makes_the_binary_sensor_unknown_and_the_score_numeric() -> None:
    configs = camera(("empty", "person"))
    assert configs["detected"]["value_template"].startswith("{{ None if value_json.get('reason')")
    assert configs["score"]["suggested_display_precision"] == 2  # None: unknown, as a number


def test_discovery_follows_a_model_switch_and_deletes_nothing() -> None:
    """A switch to ImageNet keeps the trained model's binary sensor and buttons (automations
    use them); they are not emptied, and the label sensor follows the new classes."""
    publisher = MqttPublisher(MqttSettings(), "camapp-garage")  # never started: it queues
    channel = Channel(publisher, "camapp", "garage", ("camapp/garage/availability",))
    trained = ha.Camera(channel, 1, "occ", ("empty", "person"), buttons=("empty", "person"))
    discovery = ha.Discovery(trained, HaSettings())
    discovery.update(
        ha.Camera(channel, 1, "mobilenet_v2_int8", ("a", "b", "c"), buttons=("empty", "person"))
    )
    queued = {m.topic: m.payload for m in publisher._outbox._queued}
    assert b"" not in queued.values()
    kept = {t.split("/")[3] for t in queued}
    assert {"capture_empty", "capture_person", "detected"} <= kept
    label = json.loads(queued["homeassistant/sensor/camapp-garage/label/config"])
    assert label["options"] == ["a", "b", "c", "none"]
