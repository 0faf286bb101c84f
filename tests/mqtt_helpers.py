"""A private mosquitto per test and a recording subscriber: real broker, no shared state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camapp.broker import Broker, free_port

__all__ = ["Broker", "Subscriber", "free_port"]


class Subscriber:
    """Records every message on `topics`, with a wait that fails loudly on timeout."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        client_id: str | None = None,
        clean: bool = True,
        qos: int = 1,
    ) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        self._topics = topics
        self._qos = qos
        self._subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber did not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe([(t, self._qos) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, check: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; got {len(self.messages)} messages")
                self._cond.wait(left)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
