"""Runtime control over MQTT: `<base>/<camera_id>/set` takes a JSON object of settings.

A command is validated whole by `Controls.update()` and applied all or nothing. Applied:
the settings in force are published retained on `config`. Rejected (bad JSON, not an
object, unknown key, wrong type, out of range): nothing changes, and `error` gets
`{"error": why, "payload": what was received}`. Nothing a sender can publish stops camapp.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from camapp.publish.mqtt import dumps
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.controls import ControlError, Controls

log = logging.getLogger(__name__)

# Longest received payload echoed back on `error`: a huge bad command must not be amplified.
ECHO_LIMIT = 1000


class CommandHandler:
    """Handles `set` (subscribe `handle`); publishes `config` (retained) and `error`.

    Register `publish_config` with the publisher's `on_connected`: once at start (the first
    connection), and again after each reconnection in case the broker lost its retained copy.
    """

    def __init__(self, channel: Channel, controls: Controls) -> None:
        self._publisher = channel
        self._controls = controls
        # Commands come from the MQTT thread and the live view's: one at a time, so that the
        # last `config` published is always the settings in force.
        self._lock = threading.RLock()

    def handle(self, payload: bytes) -> None:
        """Apply one received command, or say why not; runs on the MQTT network thread."""
        try:
            command = json.loads(payload)
            if not isinstance(command, dict):
                raise ControlError(f"expected a JSON object of settings, got {_json_type(command)}")
            self.apply(command, "MQTT")
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: `[[[[...`
        except (ValueError, RecursionError, ControlError) as exc:
            why = str(exc) if isinstance(exc, ControlError) else f"invalid JSON: {exc}"
            raw = payload.decode("utf-8", errors="replace")[:ECHO_LIMIT]
            log.warning("rejected command on %s: %s", self._publisher.topic("set"), why)
            error = dumps({"error": why, "payload": raw})
            # Telemetry, not KEEP: a flood of bad commands must not grow the outbox unbounded.
            self._publisher.publish("error", error, kind=Kind.TELEMETRY)

    def apply(self, command: Mapping[str, Any], via: str) -> dict[str, Any]:
        """Validate and apply a command (all or nothing, else ControlError), publish the
        settings now in force on `config`, and return them. The live view calls it too."""
        with self._lock:
            config = self._controls.update(command)
            log.info("applied command %s (%s)", dumps(command), via)
            self.publish_config()
        return config

    def publish_config(self) -> None:
        with self._lock:
            self._publisher.publish("config", dumps(self._controls.snapshot()), retain=True)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
