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

Leaving: `close()` queues `offline` last, and sends a clean DISCONNECT only once everything,
`offline` included, was delivered; otherwise it drops the connection without one, so that
the broker publishes the will (`offline`) instead. A clean DISCONNECT with `offline` still
queued would make the broker discard the will and keep a stopped camera `online` for good.

MQTT 5 (the default; 3.1.1 for old brokers): a persistent session that expires
(`SESSION_EXPIRY`), classifications that expire (`CLASSIFICATION_EXPIRY`), and PUBACK reason
codes, which make a broker's refusal (an ACL) visible: logged once and counted (`refused`).
Under 3.1.1 a broker drops a refused message in silence.

Topics (base topic `camapp` by default): see docs/mqtt.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from camapp.config.schema import MqttSettings
from camapp.errors import ConfigError, first_line, os_reason
from camapp.publish.network import NetworkLoop
from camapp.publish.outbox import Kind, Message, Outbox

log = logging.getLogger(__name__)

# Messages handed to paho and not yet acknowledged, at most. Also paho's inflight limit, so
# paho itself never queues. Lower if an MQTT 5 broker's Receive Maximum says so.
WINDOW = 20

PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
# MQTT 5: how long the broker keeps the session of a camera that is away (its subscriptions,
# and the `set` commands sent meanwhile, delivered when it is back); no longer, or every
# camera ever retired would leave a session behind.
SESSION_EXPIRY = 3600
# MQTT 5: seconds after which the broker discards a classification it could not deliver yet
# (to a persistent subscriber that is away): a minute-old classification is stale.
CLASSIFICATION_EXPIRY = 60
# A connection lost sooner than FLAP_SECONDS after its CONNACK, FLAPS times in a row: the broker
# keeps handing the session to another client with the same id (mosquitto 2.0 says nothing;
# newer brokers send DISCONNECT "Session taken over" under MQTT 5).
FLAP_SECONDS = 10.0
FLAPS = 3
SESSION_TAKEN_OVER = 0x8E
# Seconds close() lets the network thread send the DISCONNECT (or see the connection end).
LEAVE_TIMEOUT = 2.0


class Shed(NamedTuple):
    """Messages the full outbox shed, by what the connection was doing at the time."""

    offline: int  # the broker was away longer than the buffer lasts
    connected: int  # more was published than the link or the broker took


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
    handlers and `on_connected` callbacks run on the network thread (`publish/network.py`); an
    exception in one is logged, never fatal.
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
        self._v5 = _protocol(settings) == mqtt.MQTTv5
        self._client = self._make_client(password)
        # Back within 10 s of the broker's return, for one connection attempt per 10 s.
        self._network = NetworkLoop(self._client, min_delay=1, max_delay=10)
        # _lock guards the outbox, _online and the counters, and is held while handing a
        # message to paho so that a reconnect cannot interleave with it. Never taken in
        # on_publish, which paho calls holding its own message lock (a publishing thread holds
        # ours, then takes paho's).
        self._lock = threading.Lock()
        self._outbox = Outbox(settings.buffer_messages, settings.buffer_bytes)
        self._acks: deque[tuple[int, ReasonCode]] = deque()
        self._online = False
        self._window = WINDOW
        self._wake = threading.Event()
        self._window_full = False  # the sender waits for an ack to free the window
        self._closing = False
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-outbox", daemon=True)
        self._handlers: dict[str, list[Handler]] = {}
        self._watchers: dict[str, list[Callable[[str, bytes, bool], None]]] = {}
        self._connected_callbacks: list[Callable[[], None]] = []
        self._watch = ConnectionWatch(self._where(), self.client_id, settings.connect_timeout)
        self._shed_connected = 0
        self._refused = 0
        self._first_refusal = ""
        # MQTT 5 only: classifications expire at the broker.
        self._expiring = _publish_properties(CLASSIFICATION_EXPIRY) if self._v5 else None

    def _make_client(self, password: str | None) -> mqtt.Client:
        settings = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
        )
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_timeout = settings.connect_timeout  # TCP and TLS; CONNACK: ConnectionWatch
        client.max_inflight_messages_set(WINDOW)
        if self._availability:
            client.will_set(self._availability[0], "offline", qos=1, retain=True)
        if settings.username:
            client.username_pw_set(settings.username, password)
        if settings.uses_tls:
            client.tls_set_context(_tls_context(settings))
        return client

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler(payload)` for each message on `topic` (exact), from every connection."""
        self._handlers.setdefault(topic, []).append(handler)

    def watch(self, pattern: str, handler: Callable[[str, bytes, bool], None]) -> None:
        """Call `handler(topic, payload, retained)` for each message matching `pattern`
        (wildcards allowed), from every connection."""
        self._watchers.setdefault(pattern, []).append(handler)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after each successful (re)connection, e.g. to re-announce."""
        self._connected_callbacks.append(callback)

    def start(self) -> None:
        self._sender.start()
        host, port, keepalive = self.settings.host, self.settings.port, self.settings.keepalive
        if self._v5:
            session = Properties(PacketTypes.CONNECT)
            session.SessionExpiryInterval = SESSION_EXPIRY
            self._client.connect_async(host, port, keepalive, clean_start=False, properties=session)
        else:
            self._client.connect_async(host, port, keepalive)
        self._network.start()

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
            dropped = self._outbox.dropped
            self._outbox.add(Message(topic, data, retain, kind))
            if self._online:
                self._shed_connected += self._outbox.dropped - dropped
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
    def shed(self) -> Shed:
        """`dropped`, by cause: while the broker was away, or while connected."""
        with self._lock:
            return Shed(self._outbox.dropped - self._shed_connected, self._shed_connected)

    def drop_warning(self) -> str | None:
        """The line to log at exit if messages were shed, naming why; None if none were."""
        offline, connected = self.shed
        if not offline + connected:
            return None
        causes = [f"{offline} while the broker was away"] if offline else []
        if connected:
            causes.append(f"{connected} while connected, faster than the broker took them")
        return (
            f"{offline + connected} MQTT messages dropped, oldest classifications first: the"
            " outbound buffer (mqtt buffer_messages/buffer_bytes) was full, " + " and ".join(causes)
        )

    @property
    def refused(self) -> int:
        """Messages the broker acknowledged with a refusal (MQTT 5 only; an ACL, a quota)."""
        with self._lock:
            self._apply_acks()
            return self._refused

    def refusal_error(self) -> str | None:
        """The error to end the run with if the broker refused messages; None if it did not."""
        refused = self.refused
        if not refused:
            return None
        return (
            f"{refused} MQTT messages refused by the broker at {self._where()} (the first:"
            f" {self._first_refusal}): check its ACL for client {self.client_id}"
        )

    @property
    def undelivered(self) -> int:
        """Messages queued or in flight, not yet acknowledged by the broker."""
        with self._lock:
            self._apply_acks()
            return len(self._outbox)

    def close(self, timeout: float = 5.0) -> int:
        """Queue `offline`, wait up to `timeout` s for the outbox to drain, leave, and return
        how many messages were not delivered.

        Leaves with a clean DISCONNECT only if everything was delivered: otherwise `offline`
        was not, and only a connection ended without DISCONNECT makes the broker publish the
        will (`offline`) in its place."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for topic in self._availability:
                self._outbox.add(Message(topic, b"offline", True, Kind.KEEP))
            self._flush()
        while self.undelivered and time.monotonic() < deadline:
            time.sleep(0.02)
        self._closing = True
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join()
        left = self.undelivered
        if left:
            self._abandon()
        else:
            self._client.disconnect()
        self._network.leave()
        self._network.join(LEAVE_TIMEOUT)
        return left

    def _abandon(self) -> None:
        """End the connection without DISCONNECT, so that the broker publishes the will."""
        sock = self._client.socket()
        if sock is not None:
            # Shut down through a duplicate descriptor: paho's (maybe TLS) socket object is
            # left alone, and the network thread sees the connection end.
            with (
                contextlib.suppress(OSError),
                socket.fromfd(sock.fileno(), sock.family, sock.type) as raw,
            ):
                raw.shutdown(socket.SHUT_RDWR)
        # The DISCONNECT it queues cannot leave a shut socket; close() then ends the reconnecting.
        self._client.disconnect()

    # -- the sender thread ------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._closing:
            self._wake.wait(1.0)
            self._wake.clear()
            self._watch.tick()
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
            if self._outbox.in_flight >= self._window:
                self._window_full = True
                self._apply_acks()
                if self._outbox.in_flight >= self._window:
                    return
            self._window_full = False
            message = self._outbox.take()
            assert message is not None
            expiring = self._expiring if message.kind is Kind.BULK else None
            info = self._client.publish(
                message.topic, message.payload, self.settings.qos, message.retain, expiring
            )
            # Done at the PUBACK, or at QoS 0 once paho has written it (on_publish either way):
            # so the window bounds what paho holds at every QoS, even with a stalled socket.
            message.mid = info.mid

    def _apply_acks(self) -> None:
        while self._acks:
            mid, reason = self._acks.popleft()
            message = self._outbox.acked(mid)
            if reason.is_failure and message is not None:
                self._count_refusal(message, reason)

    def _count_refusal(self, message: Message, reason: ReasonCode) -> None:
        # Logged once: an ACL refuses every message on its topic, thousands an hour.
        self._refused += 1
        if self._refused == 1:
            self._first_refusal = f"{message.topic}: {reason}"
            log.error(
                "broker %s refused a message on %s: %s (check its ACL for client %s);"
                " further refusals are counted, not logged",
                self._where(),
                message.topic,
                reason,
                self.client_id,
            )

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # TCP and TLS are through (their failures go to on_connect_fail): CONNECT goes next.
        self._watch.attempt()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._watch.refused(reason)
            return
        self._watch.connected()
        self._network.connected()
        log.info("connected to %s as %s", self._where(), self.client_id)
        with self._lock:
            client.drop_out_messages()
            self._apply_acks()  # acks from the old connection, before anything is resent
            self._outbox.requeue()
            for topic in reversed(self._availability):
                self._outbox.add(Message(topic, b"online", True, Kind.KEEP), front=True)
            # An MQTT 5 broker may take fewer unacknowledged messages than the window (paho's
            # own limit, which it cannot lower now, stays WINDOW: it is never reached).
            self._window = min(WINDOW, getattr(props, "ReceiveMaximum", WINDOW))
            self._online = True
        if self._handlers or self._watchers:
            topics = [*self._handlers, *self._watchers]
            client.subscribe([(topic, self.settings.qos) for topic in topics])
        for callback in self._connected_callbacks:
            self._guarded(callback)
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Called in the `except OSError:` block of a connection attempt: the exception says why.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = f"TLS verification failed: {exc.verify_message} (check mqtt tls_ca)"
        elif isinstance(exc, ssl.SSLError):
            why = f"TLS failed: {_why(exc)}"
        else:
            why = f"unreachable: {_why(exc) if exc else 'connection failed'}"
        self._watch.failed(why)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was_online, self._online = self._online, False
        if not self._closing:
            self._watch.lost(reason, was_online)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self._acks.append((mid, reason))
        if self._window_full:  # otherwise the acks are applied at the next publish
            self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        for handler in self._handlers.get(msg.topic, ()):
            self._guarded(lambda handler=handler: handler(msg.payload))
        for pattern, watchers in self._watchers.items():
            if mqtt.topic_matches_sub(pattern, msg.topic):
                for watcher in watchers:
                    self._guarded(lambda w=watcher: w(msg.topic, msg.payload, bool(msg.retain)))

    def _guarded(self, call: Callable[[], None]) -> None:
        # An exception escaping a callback would cost the connection (publish/network.py).
        try:
            call()
        except Exception:
            log.exception("MQTT handler failed")

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"


class ConnectionWatch:
    """Turns connection events into at most one log line per distinct problem, and names
    those paho leaves silent: a server that never answers CONNECT, one that hangs up without
    answering (a TLS port), another client taking the session over and over.

    Its methods are called by the network thread, and `tick()` by the sender thread."""

    def __init__(self, where: str, client_id: str, timeout: float) -> None:
        self.where = where
        self.client_id = client_id
        self.timeout = timeout
        self._lock = threading.Lock()
        self._attempt: float | None = None  # when the attempt awaiting its CONNACK began
        self._connected_at = 0.0
        self._flaps = 0  # short-lived connections in a row
        self._reported: str | None = None

    def attempt(self) -> None:
        """The connection is open and CONNECT about to go: the clock for its CONNACK starts."""
        with self._lock:
            self._attempt = time.monotonic()

    def tick(self) -> None:
        """About once a second: has the attempt waited for its CONNACK too long?"""
        if not self._end_attempt(older_than=time.monotonic() - self.timeout):
            return
        self.report(
            logging.WARNING,
            f"no MQTT answer from {self.where} within {self.timeout:g} s: not an MQTT broker, or"
            " a TLS port (set mqtt tls); retrying in the background",
        )

    def failed(self, why: str) -> None:
        self._end_attempt()  # also one whose CONNECT could not be written
        self.report(logging.WARNING, f"broker {self.where} {why}; retrying in the background")

    def refused(self, reason: ReasonCode) -> None:
        self._end_attempt()
        # 134/135: bad user name or password / not authorized (MQTT 3.1.1 codes 4/5)
        hint = " (check mqtt username and password)" if reason.value in (134, 135) else ""
        self.report(
            logging.ERROR, f"broker {self.where} refused the connection: {reason}{hint}; retrying"
        )

    def connected(self) -> None:
        self._end_attempt()
        self._connected_at = time.monotonic()
        self._reported = None

    def lost(self, reason: ReasonCode, was_online: bool) -> None:
        if not was_online:
            if self._end_attempt():  # hung up on CONNECT, before the timeout
                self.report(
                    logging.WARNING,
                    f"{self.where} closed the connection without an MQTT answer: not an MQTT"
                    " broker, or a TLS port (set mqtt tls); retrying in the background",
                )
            return
        if not reason.is_failure:
            return
        short = time.monotonic() - self._connected_at < FLAP_SECONDS
        self._flaps = self._flaps + 1 if short else 0
        if reason.value == SESSION_TAKEN_OVER:
            self._flaps = max(self._flaps, FLAPS)
        if self._flaps == FLAPS:
            log.warning(
                "another client is using client id %s: the broker gives the session to whichever"
                " connected last, and both keep reconnecting (%d connections in a row lasted"
                " under %g s); give each camera its own mqtt client_id",
                self.client_id,
                FLAPS,
                FLAP_SECONDS,
            )
        elif self._flaps < 2:  # the second short one may already be the takeover
            self.report(logging.WARNING, f"lost broker {self.where} ({reason}); reconnecting")

    def report(self, level: int, message: str) -> None:
        # Once per distinct problem: a broker down for an hour must not flood the journal.
        if message != self._reported:
            log.log(level, "%s", message)
            self._reported = message

    def _end_attempt(self, older_than: float | None = None) -> bool:
        """End the attempt awaiting its CONNACK, if there is one (begun before `older_than`);
        say whether there was."""
        with self._lock:
            attempt = self._attempt
            if attempt is None or (older_than is not None and attempt > older_than):
                return False
            self._attempt = None
            return True


def _protocol(settings: MqttSettings) -> mqtt.MQTTProtocolVersion:
    return PROTOCOLS[settings.protocol]  # validated by the setting's declaration


def _publish_properties(expiry: int) -> Properties:
    """PUBLISH properties packed once: paho packs a message's properties again at every send,
    which cost more than the rest of a classification's hand-over to paho (docs/benchmarks.md).
    They never change after this, so the packed bytes stand in for paho's `pack()`."""
    properties = Properties(PacketTypes.PUBLISH)
    properties.MessageExpiryInterval = expiry
    packed = properties.pack()
    # Properties.__setattr__ accepts only MQTT property names: set the instance's own `pack`.
    object.__setattr__(properties, "pack", lambda: packed)
    return properties


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
    return os_reason(exc) if isinstance(exc, OSError) else first_line(exc)


# Compact JSON, as every camapp payload is written. One shared encoder (json.dumps() with
# separators builds a new one per call), called through its bound method: no wrapper call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
dumps: Callable[[Any], str] = _COMPACT.encode
# The payload published for every frame (a classification), serialised once, straight to
# bytes: orjson's compact output is json's byte for byte for its str, int and float values
# (non-ASCII text as UTF-8 rather than escaped) at a tenth of the CPU (docs/benchmarks.md).
# numpy scalars (a plugin backend's own figures) are numbers too, as json took float64.
dumpb: Callable[[Any], bytes] = functools.partial(orjson.dumps, option=orjson.OPT_SERIALIZE_NUMPY)
