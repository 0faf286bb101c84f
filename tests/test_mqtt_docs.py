"""docs/mqtt.md tells what Home Assistant is sent: the label config it shows is the one camapp
builds, the device names the model in force, and a video file has no source problem."""

from __future__ import annotations

import json
import re

from camapp.config.schema import HaSettings, MqttSettings
from camapp.publish import ha
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.topics import Channel
from tests.conftest import REPO

MQTT_DOC = (REPO / "docs" / "mqtt.md").read_text()


def _porch(model: str = "mobilenet_v2_int8", **options: object) -> tuple[Channel, ha.Camera]:
    publisher = MqttPublisher(MqttSettings(), "camapp-porch")  # never started: it queues
    channel = Channel(publisher, "camapp", "porch", ("camapp/porch/availability",))
    return channel, ha.Camera(channel, 1, model, ("a",) * 60, area="Porch", **options)  # type: ignore[arg-type]


def test_the_documented_label_config_is_the_one_sent() -> None:
    shown = re.search(r"`homeassistant/sensor/camapp-porch/label/config`:\n\n```json\n(.+?)```",
                      MQTT_DOC, re.S)  # fmt: skip
    documented = json.loads(shown.group(1))
    sent = ha.discovery_configs(_porch()[1], "homeassistant")
    label = sent["homeassistant/sensor/camapp-porch/label/config"]
    assert documented["value_template"] == label["value_template"]  # None, not 'unknown'
    assert documented["device"]["model"] == label["device"]["model"]
    assert "`None`, Home Assistant's\n*unknown*" in MQTT_DOC


def test_the_device_names_the_model_in_force() -> None:
    channel, first = _porch()
    discovery = ha.Discovery(first, HaSettings())
    discovery.update(_porch("room")[1])
    queued = {m.topic: m.payload for m in channel.publisher._outbox._queued}
    label = json.loads(queued["homeassistant/sensor/camapp-porch/label/config"])
    assert label["device"]["model"] == "camapp smart camera (room)"
    assert "the model in force in its device" in MQTT_DOC


def test_a_video_file_has_no_source_problem_sensor() -> None:
    topic = "homeassistant/binary_sensor/camapp-porch/source_problem/config"
    assert topic in ha.discovery_configs(_porch(live=True)[1], "homeassistant")
    assert topic not in ha.discovery_configs(_porch(live=False)[1], "homeassistant")
    assert "| live sources only (cameras, streams): a video file never goes away |" in MQTT_DOC
