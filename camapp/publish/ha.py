"""Home Assistant MQTT discovery: the camera appears in Home Assistant as a device by itself.

Each entity's config is published retained on
`<prefix>/sensor/camapp-<camera_id>/<object>/config` (see docs/mqtt.md), again after every
connection and whenever Home Assistant announces `online` on `<prefix>/status` (its birth
message: it has restarted and may have lost non-retained state). Births are coalesced: at
most one re-announcement is pending, REANNOUNCE_DELAY s after the first birth it answers, so
a flood of `online` (a loop, a misbehaving client) costs one announcement a second, not six
messages per birth. An empty retained payload on the same topics removes the entities
(`camapp ha remove`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from camapp import __version__
from camapp.config.schema import HaSettings
from camapp.publish.mqtt import MqttPublisher, default_client_id, dumps
from camapp.publish.topics import Channel

# Seconds from Home Assistant's birth message to the re-announcement it triggers; the births
# that arrive meanwhile are answered by that one.
REANNOUNCE_DELAY = 1.0


@dataclass(frozen=True)
class Entity:
    object_id: str
    name: str
    topic: str  # the camapp topic the value comes from: `state` or `stats`
    field: str  # the JSON field holding the value
    extra: tuple[tuple[str, Any], ...] = ()
    attributes: bool = False  # the whole JSON message also as the entity's attributes


_DIAGNOSTIC = (("entity_category", "diagnostic"), ("state_class", "measurement"))

# `stats` is published by the governor: fps_classified, cpu_pct, temp_c, power_w, ...
ENTITIES = (
    Entity("label", "Label", "state", "label", (("icon", "mdi:cctv"),), attributes=True),
    Entity("score", "Score", "state", "score", (("state_class", "measurement"),)),
    Entity(
        "classification_rate",
        "Classifications per second",
        "stats",
        "fps_classified",
        (*_DIAGNOSTIC, ("unit_of_measurement", "1/s"), ("icon", "mdi:speedometer")),
    ),
    Entity("cpu", "CPU", "stats", "cpu_pct", (*_DIAGNOSTIC, ("unit_of_measurement", "%"))),
    Entity(
        "temperature",
        "Temperature",
        "stats",
        "temp_c",
        (*_DIAGNOSTIC, ("device_class", "temperature"), ("unit_of_measurement", "°C")),
    ),
    Entity(
        "power",
        "Power",
        "stats",
        "power_w",
        (*_DIAGNOSTIC, ("device_class", "power"), ("unit_of_measurement", "W")),
    ),
)


def node_id(camera_id: str) -> str:
    """The discovery node id: the camera's default MQTT client id."""
    return default_client_id(camera_id)


def config_topic(prefix: str, camera_id: str, entity: Entity) -> str:
    return f"{prefix}/sensor/{node_id(camera_id)}/{entity.object_id}/config"


def discovery_configs(channel: Channel, prefix: str, model: str) -> dict[str, dict[str, Any]]:
    """Config topic -> config payload for every entity of this camera."""
    camera_id = channel.camera_id
    device = {
        "identifiers": [node_id(camera_id)],
        "name": f"camapp {camera_id}",
        "model": f"camapp smart camera ({model})",
        "manufacturer": "camapp",
        "sw_version": __version__,
    }
    configs = {}
    for entity in ENTITIES:
        state_topic = channel.topic(entity.topic)
        configs[config_topic(prefix, camera_id, entity)] = {
            "name": entity.name,
            "unique_id": f"{node_id(camera_id)}_{entity.object_id}",
            "state_topic": state_topic,
            # `default(none)`: a missing or null field (no temperature sensor) is "unknown".
            "value_template": f"{{{{ value_json.{entity.field} | default(none) }}}}",
            **_availability(channel),
            "device": device,
            "origin": {"name": "camapp", "sw_version": __version__},
            **({"json_attributes_topic": state_topic} if entity.attributes else {}),
            **dict(entity.extra),
        }
    return configs


def _availability(channel: Channel) -> dict[str, Any]:
    """One camera: its own topic. Several: the process's too (it carries the last will), and
    the entity is available only while both say `online`."""
    if len(channel.availability) == 1:
        return {
            "availability_topic": channel.availability[0],
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    return {
        "availability": [{"topic": topic} for topic in channel.availability],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


class Discovery:
    """Announces this camera's entities: register `announce` with the publisher's
    `on_connected`, and `on_status` for `<prefix>/status` (Home Assistant's birth message)."""

    def __init__(self, channel: Channel, settings: HaSettings, model: str) -> None:
        self._publisher = channel.publisher
        self.status_topic = f"{settings.prefix}/status"
        self._configs = {
            topic: dumps(config)
            for topic, config in discovery_configs(channel, settings.prefix, model).items()
        }
        self._lock = threading.Lock()
        self._pending = False  # a re-announcement is scheduled

    def announce(self) -> None:
        for topic, payload in self._configs.items():
            self._publisher.publish(topic, payload, retain=True)

    def on_status(self, payload: bytes) -> None:
        """On the network thread: schedule one re-announcement, unless one is pending."""
        if payload.strip() != b"online":
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        timer = threading.Timer(REANNOUNCE_DELAY, self._reannounce)
        timer.daemon = True  # a stop does not wait for it
        timer.start()

    def _reannounce(self) -> None:
        with self._lock:
            self._pending = False
        self.announce()


def remove(publisher: MqttPublisher, prefix: str, camera_id: str) -> None:
    """Queue the empty retained payloads that delete a camera's entities."""
    for entity in ENTITIES:
        publisher.publish(config_topic(prefix, camera_id, entity), b"", retain=True)
