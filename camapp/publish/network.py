"""The MQTT client's network thread: paho's network loop, run by camapp at a paced rate.

paho's own thread (`loop_start()`) wakes for every message twice: `publish()` writes a byte
to its socket pair to break its `select()`, then the PUBACK arrives. On two cores busy with
inference, each wake-up preempts a worker, and the broker and the subscribers wake as often.
This thread drives the same client through paho's external-loop API (`loop_read()`,
`loop_write()`, `loop_misc()`, `on_socket_register_write`) and paces it instead: a message
published while the connection has been quiet for PACE seconds is written at once; while
messages keep coming, what was published in the last PACE seconds is written together, and
the acknowledgements and commands that came meanwhile are read together, at most once per
PACE. At the clip's pace nothing waits; at full speed one wake-up carries several messages.

Reconnecting is loop_forever()'s: after a lost or failed connection, wait (1 s, doubling up to
`max_delay`, back to 1 s after a CONNACK) and call `reconnect()`, whose failure goes to
`on_connect_fail` as paho's own loop reports it. An exception escaping a callback is logged and
the connection started over, where paho's own thread ended and published nothing again.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

# Seconds during which messages published after a write wait to be written together.
PACE = 0.002
IDLE = 1.0  # how long the thread sleeps with nothing to do: keepalive is checked this often
DRAIN = 1000  # packets read at most per wake-up, so a flood of commands cannot hold it


class NetworkLoop:
    """Owns the thread that does all of one paho client's network I/O."""

    def __init__(self, client: mqtt.Client, min_delay: float, max_delay: float) -> None:
        self._client = client
        self._min, self._max = min_delay, max_delay
        self._delay: float | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._holding = False  # writes are held until the next tick: publishes need not wake
        self._leaving = threading.Event()  # also cuts a reconnect delay short
        self._broken = False  # a callback raised: the connection is started over
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)
        client.on_socket_register_write = self._on_register_write

    def start(self) -> None:
        self._thread.start()

    def connected(self) -> None:
        """A CONNACK: the next lost connection waits the shortest delay again."""
        self._delay = None

    def leave(self) -> None:
        """The client is disconnecting: once its socket is closed, the thread ends."""
        self._leaving.set()
        self._wake()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` s for the thread to end after `leave()`, then end it anyway."""
        if self._thread.is_alive():  # a publisher closed before it started has none
            self._thread.join(timeout)
            self._stop.set()
            self._wake()
            self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # paho calls this from the publishing thread when a packet is queued on an empty
        # queue. While the thread holds writes for its next tick, it will write them anyway.
        if not self._holding:
            self._wake()

    def _wake(self) -> None:
        # try, not contextlib.suppress: a publishing thread comes here, and each Python call
        # on a worker's path counts (tests/test_hot_path.py).
        try:  # noqa: SIM105
            self._wake_w.send(b"\0")
        except OSError:  # full: a wake-up is pending anyway; closed: the thread has ended
            pass

    def _run(self) -> None:
        retry = False  # the first attempt goes at once, later ones after a delay
        while not self._stop.is_set():
            try:
                if not self._step(retry):
                    return
            except Exception:  # a callback's bug: paho's own thread would end for good
                log.exception("MQTT network loop failed; reconnecting")
                self._broken = True  # paho may be mid-packet: only reconnect() resets it
            retry = True

    def _step(self, retry: bool) -> bool:
        """Connect if need be, then serve the connection; False once the thread should end."""
        client = self._client
        if client.socket() is None or self._broken:
            if self._leaving.is_set() or (retry and not self._backoff()):
                return False
            self._broken = False
            try:
                client.reconnect()  # closes the old socket first
            except OSError:
                client.on_connect_fail(client, None)  # it reads why from the OSError
                return True
        self._serve(client)
        return True

    def _backoff(self) -> bool:
        """Wait before the next attempt; False if the thread should end instead."""
        self._delay = self._min if self._delay is None else min(self._delay * 2, self._max)
        return not self._leaving.wait(self._delay) and not self._stop.is_set()

    def _serve(self, client: mqtt.Client) -> None:
        """One connection's I/O until it ends: ticks while messages flow, else one wait."""
        held = False  # everything queued was just written: the next ones wait for a tick
        while not self._stop.is_set() and (sock := client.socket()) is not None:
            if held:
                self._holding = True
                self._wait([self._wake_r], [], PACE)
                self._holding = False
            elif not _pending(sock):
                self._wait([sock, self._wake_r], [sock] if client.want_write() else [], IDLE)
            if not self._read(client, sock):
                return
            queued = client.want_write()
            # Also with nothing queued: paho's flag that a write is due (set by a publishing
            # thread after it queued its packet, so maybe after that packet was written) is
            # reset, or no publish would call _on_register_write again.
            if client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                return
            held = queued and not client.want_write()  # else the socket is full: wait for room
            if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                return

    def _wait(self, readers: list[Any], writers: list[Any], timeout: float) -> None:
        try:
            ready = select.select(readers, writers, [], timeout)[0]
        except (OSError, ValueError):  # the socket was closed under us: the reads say so
            return
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)

    def _read(self, client: mqtt.Client, sock: Any) -> bool:
        """Read every packet that has arrived (paho's loop_read() reads only about as many as
        it has messages in flight); False if the connection ended."""
        for _ in range(DRAIN):
            if not _pending(sock) and not _readable(sock):
                break
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return False
        return True


def _pending(sock: Any) -> bool:
    """Bytes a TLS socket has already decrypted, which select() cannot see."""
    return hasattr(sock, "pending") and sock.pending() > 0


def _readable(sock: Any) -> bool:
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False
