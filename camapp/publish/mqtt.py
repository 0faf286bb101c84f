"""MQTT transport: connection, security, the bounded outbox, subscriptions.

Every message goes through camapp's own `Outbox` (bounded in messages and bytes) and is
handed to paho only while connected, at most `WINDOW` at a time, in order. paho therefore
never holds more than the window, and a broker outage costs memory only up to the bound.
While connected, the publishing thread hands its message over itself; the `mqtt-outbox`
thread only drains what had to wait (during an outage, or for a full window).

Ordering across a lost connection: paho would resend its unacknowledged messages after
the reconnect, but only after `on_connect` returns, while anything published from another
thread in between would overtake them. So `on_connect` takes them away from paho
(`drop_out_messages`) and puts them back at the front of the outbox, which then sends
everything again in the original order. At QoS 1 this is at-least-once, like paho's own
resend: a message whose acknowledgement was lost with the connection arrives twice.

Topics (base topic `camapp` by default): see docs/mqtt.md.
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camapp.config.schema import MqttSettings
from camapp.errors import ConfigError
from camapp.publish.outbox import Kind, Message, Outbox

log = logging.getLogger(__name__)

# Messages handed to paho and not yet acknowledged, at most. Also paho's inflight limit, so
# paho itself never queues.
WINDOW = 20


Handler = Callable[[bytes], None]


def default_client_id(camera_id: str) -> str:
    """`camapp-<camera_id>`: unique per camera, and also Home Assistant's discovery node id,
    which the documented ACL (`homeassistant/sensor/camapp-%u/+/config`) relies on."""
    return f"camapp-{camera_id}"


class MqttPublisher:
    """Owns the paho client and the outbox: one connection for the whole process. Connects in
    the background: a broker that is down at start, or goes away later, never holds up
    capture; messages wait in the outbox.

    `availability` topics get a retained `online` ahead of everything else on each connection
    and `offline` at close; the first one is also the connection's last will, so it turns
    `offline` when the process dies. `publish()` may be called from any thread. Subscription
    handlers and `on_connected` callbacks run on paho's network thread; an exception in one
    is logged, never fatal.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        password: str | None = None,
        availability: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self._availability = tuple(availability)
        self.client_id = client_id
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        # Back within 10 s of the broker's return, for one connection attempt per 10 s.
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_inflight_messages_set(WINDOW)
        if self._availability:
            self._client.will_set(self._availability[0], "offline", qos=1, retain=True)
        if settings.username:
            self._client.username_pw_set(settings.username, password)
        if settings.uses_tls:
            self._client.tls_set_context(_tls_context(settings))
        # _lock guards the outbox and _online, and is held while handing a message to paho so
        # that a reconnect cannot interleave with it. Never taken in on_publish, which paho
        # calls holding its own message lock (a publishing thread holds ours, then takes paho's).
        self._lock = threading.Lock()
        self._outbox = Outbox(settings.buffer_messages, settings.buffer_bytes)
        self._acks: deque[int] = deque()
        self._online = False
        self._wake = threading.Event()
        self._window_full = False  # the sender waits for an ack to free the window
        self._closing = False
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-outbox", daemon=True)
        self._handlers: dict[str, list[Handler]] = {}
        self._connected_callbacks: list[Callable[[], None]] = []
        self._reported: str | None = None

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler(payload)` for each message on `topic` (exact), from every connection."""
        self._handlers.setdefault(topic, []).append(handler)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after each successful (re)connection, e.g. to re-announce."""
        self._connected_callbacks.append(callback)

    def start(self) -> None:
        self._sender.start()
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self._client.loop_start()

    def publish(
        self, topic: str, payload: str | bytes, retain: bool = False, *, kind: Kind | None = None
    ) -> None:
        """Queue a message. `kind` says how readily it is shed when the outbox is full;
        by default retained messages are KEEP and others TELEMETRY."""
        if kind is None:
            kind = Kind.KEEP if retain else Kind.TELEMETRY
        data = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            self._apply_acks()  # acknowledged messages must not count against the bound
            self._outbox.add(Message(topic, data, retain, kind))
            # Handed to paho right here when connected: waking the sender thread for every
            # message cost more CPU than the message itself (docs/benchmarks.md). What stays
            # queued is sent by the sender once connected or once the window has room.
            self._flush()

    @property
    def dropped(self) -> int:
        """Messages shed by the full outbox since start (for the stats topic)."""
        with self._lock:
            return self._outbox.dropped

    @property
    def undelivered(self) -> int:
        """Messages queued or in flight, not yet acknowledged by the broker."""
        with self._lock:
            self._apply_acks()
            return len(self._outbox)

    def close(self, timeout: float = 5.0) -> int:
        """Publish `offline`, wait up to `timeout` s for the outbox to drain, disconnect, and
        return how many messages were not delivered."""
        for topic in self._availability:
            self.publish(topic, "offline", retain=True)
        deadline = time.monotonic() + timeout
        while self.undelivered and time.monotonic() < deadline:
            time.sleep(0.02)
        self._closing = True
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join()
        self._client.disconnect()
        self._client.loop_stop()
        return self.undelivered

    # -- the sender thread ------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._closing:
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                self._flush()

    def _flush(self) -> None:
        """Hand queued messages to paho, in order, while connected and the window allows.

        Called with the lock held. When the window is full, the acknowledgement that frees it
        wakes the sender: `_window_full` is raised before the acks are checked one last time,
        so an ack arriving in between either is seen here or sees the flag.
        """
        self._apply_acks()
        while self._online and not self._closing and self._outbox.queued:
            if self._outbox.in_flight >= WINDOW:
                self._window_full = True
                self._apply_acks()
                if self._outbox.in_flight >= WINDOW:
                    return
            self._window_full = False
            message = self._outbox.take()
            assert message is not None
            info = self._client.publish(
                message.topic, message.payload, self.settings.qos, message.retain
            )
            # Done at the PUBACK, or at QoS 0 once paho has written it (on_publish either way):
            # so the window bounds what paho holds at every QoS, even with a stalled socket.
            message.mid = info.mid

    def _apply_acks(self) -> None:
        while self._acks:
            self._outbox.acked(self._acks.popleft())

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            # 134/135: bad user name or password / not authorized (MQTT 3.1.1 codes 4/5)
            hint = " (check mqtt username and password)" if reason.value in (134, 135) else ""
            self._report(
                logging.ERROR,
                f"broker {self._where()} refused the connection: {reason}{hint}; retrying",
            )
            return
        log.info("connected to %s as %s", self._where(), self.client_id)
        self._reported = None
        with self._lock:
            client.drop_out_messages()
            self._apply_acks()  # acks from the old connection, before anything is resent
            self._outbox.requeue()
            for topic in reversed(self._availability):
                self._outbox.add(Message(topic, b"online", True, Kind.KEEP), front=True)
            self._online = True
        if self._handlers:
            client.subscribe([(topic, self.settings.qos) for topic in self._handlers])
        for callback in self._connected_callbacks:
            self._guarded(callback)
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this from its `except OSError:` block: the exception says why.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = f"TLS verification failed: {exc.verify_message} (check mqtt tls_ca)"
        elif isinstance(exc, ssl.SSLError):
            why = f"TLS failed: {_why(exc)}"
        else:
            why = f"unreachable: {_why(exc) if exc else 'connection failed'}"
        self._report(logging.WARNING, f"broker {self._where()} {why}; retrying in the background")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was_online, self._online = self._online, False
        if was_online and reason.is_failure:
            self._report(logging.WARNING, f"lost broker {self._where()} ({reason}); reconnecting")

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        self._acks.append(mid)
        if self._window_full:  # otherwise the acks are applied at the next publish
            self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        for handler in self._handlers.get(msg.topic, ()):
            self._guarded(lambda handler=handler: handler(msg.payload))

    def _guarded(self, call: Callable[[], None]) -> None:
        # An exception escaping a callback would end paho's network thread for good.
        try:
            call()
        except Exception:
            log.exception("MQTT handler failed")

    def _report(self, level: int, message: str) -> None:
        # Once per distinct problem: a broker down for an hour must not flood the journal.
        if message != self._reported:
            log.log(level, "%s", message)
            self._reported = message

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """Verification on unless `tls_insecure`; unreadable or invalid files are config errors."""
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.tls_ca: cannot load {settings.tls_ca}: {_why(exc)}") from None
    if settings.tls_cert:
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key, _no_passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.tls_cert/tls_key: cannot load {settings.tls_cert}: {_why(exc)}"
            ) from None
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _no_passphrase() -> str:
    """Called by OpenSSL for an encrypted key, instead of prompting on a terminal."""
    raise ConfigError(
        "mqtt.tls_key: the key is encrypted with a passphrase, which camapp cannot ask for;"
        " store it decrypted (openssl pkey -in KEY -out KEY.plain) and readable by camapp only"
    )


def _why(exc: BaseException) -> str:
    """The short reason of an OSError or SSLError, without errno noise."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


# Compact JSON, as every camapp payload is written. One shared encoder (json.dumps() with
# separators builds a new one per call), called through its bound method: no wrapper call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
dumps: Callable[[Any], str] = _COMPACT.encode
