"""MQTT publishing: availability with a last will, and one JSON message per classified frame.

Topics (base topic `camapp` by default):
  <base>/<camera_id>/availability   retained: `online` once connected, `offline` as the last
                                    will and on a clean exit
  <base>/<camera_id>/classification one JSON object per classified frame, not retained
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camapp.pipeline import Result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    base_topic: str = "camapp"
    qos: int = 1
    keepalive: int = 30
    client_id: str | None = None  # default: camapp-<camera_id>


class MqttPublisher:
    """Owns the paho client. Connects in the background: a broker that is down at start, or
    goes away later, never holds up capture. QoS 1 messages wait in paho's queue until the
    broker is back; `close()` reports whatever could not be delivered.
    """

    def __init__(self, settings: MqttSettings, camera_id: str) -> None:
        self.settings = settings
        self.camera_id = camera_id
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"camapp-{camera_id}",
            protocol=mqtt.MQTTv311,
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        self._lock = threading.Lock()
        self._sent = 0
        self._acked = 0
        self._connected = threading.Event()
        self._warned = False

    def topic(self, name: str) -> str:
        return f"{self.settings.base_topic}/{self.camera_id}/{name}"

    def start(self) -> None:
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self._client.loop_start()

    def publish(self, name: str, payload: str | bytes, retain: bool = False) -> None:
        with self._lock:
            self._sent += 1
        self._client.publish(self.topic(name), payload, qos=self.settings.qos, retain=retain)

    @property
    def undelivered(self) -> int:
        with self._lock:
            return self._sent - self._acked

    def close(self, timeout: float = 5.0) -> int:
        """Publish `offline`, wait up to `timeout` s for every message to be acknowledged,
        disconnect, and return how many were not delivered."""
        self.publish("availability", "offline", retain=True)
        deadline = time.monotonic() + timeout
        while self.undelivered and time.monotonic() < deadline:
            time.sleep(0.02)
        undelivered = self.undelivered
        self._client.disconnect()
        self._client.loop_stop()
        return undelivered

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._warn(f"broker {self._where()} refused the connection: {reason}")
            return
        log.info("connected to %s", self._where())
        self._warned = False
        self._connected.set()
        self.publish("availability", "online", retain=True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._warn(f"broker {self._where()} unreachable; retrying in the background")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected.is_set() and reason.is_failure:
            self._warn(f"lost broker {self._where()} ({reason}); reconnecting")
        self._connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        with self._lock:
            self._acked += 1

    def _warn(self, message: str) -> None:
        # Once per outage: a broker down for an hour must not flood the journal.
        if not self._warned:
            log.warning(message)
            self._warned = True

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"


# One encoder for every message: json.dumps() with separators builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def classification_message(result: Result, camera_id: str, model: str) -> dict[str, Any]:
    """The `classification` payload; `latency_ms` runs from capture to this moment."""
    top = result.classification.top_k
    return {
        "camera_id": camera_id,
        "frame": result.frame,
        "ts": round(result.ts, 3),
        "label": top[0].label,
        "class_id": top[0].class_id,
        "score": top[0].score,
        "top_k": [{"label": p.label, "class_id": p.class_id, "score": p.score} for p in top],
        "inference_ms": round(result.classification.inference_ms, 2),
        "latency_ms": round((time.monotonic() - result.mono) * 1000, 2),
        "model": model,
    }


class ClassificationSink:
    """Publishes each result on `<base>/<camera_id>/classification`."""

    def __init__(self, publisher: MqttPublisher, model: str) -> None:
        self._publisher = publisher
        self._model = model

    def send(self, result: Result) -> None:
        message = classification_message(result, self._publisher.camera_id, self._model)
        self._publisher.publish("classification", _COMPACT.encode(message))
