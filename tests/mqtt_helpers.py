"""A private mosquitto per test and a recording subscriber: real broker, no shared state."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camapp.bench.broker import Broker, free_port

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
        username: str | None = None,
        password: str | None = None,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311,
    ) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.arrivals: list[float] = []  # wall-clock arrival time of each message
        self._cond = threading.Condition()
        v5 = protocol == mqtt.MQTTv5
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            clean_session=None if v5 else clean,
            protocol=protocol,
        )
        self._topics = topics
        self._qos = qos
        self._subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        if username:
            self._client.username_pw_set(username, password)
        # Back within a second of a broker restart: delivery figures measure camapp, not this.
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        start = clean if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY  # 3.1.1: clean_session above
        self._client.connect("127.0.0.1", port, keepalive=30, clean_start=start)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber did not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe([(t, self._qos) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self.arrivals.append(time.time())
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

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def sync(self, topic: str) -> None:
        """Wait until everything the broker held for this subscriber has arrived: a marker
        published now on `topic` (one it subscribes to) comes back after all of it, and is
        then dropped. The positive marker a test waits for instead of sleeping."""
        marker = f"sync {time.monotonic_ns()}".encode()
        self.publish(topic, marker)
        self.wait_for(lambda: any(m.payload == marker for m in self.messages))
        with self._cond:
            at = next(i for i, m in enumerate(self.messages) if m.payload == marker)
            del self.messages[at], self.arrivals[at]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Proxy:
    """A TCP relay to the broker whose link can fail like a network: `stall()` swallows what
    the client sends (as a dead Wi-Fi link does, without the client knowing), `cut()` then
    closes the connections and refuses new ones, `restore()` relays again, `delay()` holds the
    broker's answers back as a long link does (what the client sends still goes straight on).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._stalled = False
        self._down = False
        self._delay = 0.0  # seconds the broker's answers take to reach the client
        self.swallowed = 0  # bytes from the client that never reached the broker
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._stalled = True

    def cut(self) -> None:
        with self._lock:
            self._down = True
            links, self._links = self._links, []
        for pair in links:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def restore(self) -> None:
        self._stalled = self._down = False

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._links.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client and self._stalled:
                    self.swallowed += len(data)
                    continue
                if not from_client and self._delay:
                    time.sleep(self._delay)  # what arrives meanwhile waits for the next round
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
