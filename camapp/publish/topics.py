"""One camera's topic namespace on the process's single MQTT connection.

`<base>/<camera_id>/<name>`: a `Channel` builds a camera's topics and publishes and subscribes
through the shared publisher, which itself knows nothing of cameras.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from camapp.publish.mqtt import Handler, MqttPublisher
from camapp.publish.outbox import Kind


@dataclass(frozen=True)
class Channel:
    publisher: MqttPublisher
    base_topic: str
    camera_id: str
    # What says whether this camera is alive: its own `availability`, and with several
    # cameras also the process's, which carries the connection's last will.
    availability: tuple[str, ...] = ()

    def topic(self, name: str) -> str:
        return f"{self.base_topic}/{self.camera_id}/{name}"

    def publish(
        self, name: str, payload: str | bytes, retain: bool = False, *, kind: Kind | None = None
    ) -> None:
        self.publisher.publish(self.topic(name), payload, retain, kind=kind)

    def subscribe(self, name: str, handler: Handler) -> None:
        self.publisher.subscribe(self.topic(name), handler)


def process_topic(base_topic: str, client_id: str) -> str:
    """The process's own availability topic, used when it serves several cameras."""
    return f"{base_topic}/{client_id}/availability"


def slug(name: str) -> str:
    """A name (a label, a zone) as one topic level or discovery object id: ASCII letters and
    digits, lower case, anything else `_`, at most 40 characters. A name that does not come
    through unchanged gets 6 hex digits of its hash, so two names never share a slug (`Porch`
    and `porch`, `前门` and `后门`, the label `teddy bear` and the zone `teddy` with the label
    `bear`, names alike in their first 40 characters)."""
    plain = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.lower())
    if plain == name and len(plain) <= 40:
        return plain
    return f"{plain[:33]}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"
