"""Runtime control over MQTT: `<base>/<camera_id>/set` takes a JSON object of settings.

A command is validated whole by `Controls.update()` and applied all or nothing. Applied:
the settings in force are published retained on `config`. Rejected (bad JSON, not an
object, unknown key, wrong type, out of range): nothing changes, and `error` gets
`{"error": why, "payload": what was received}`. Nothing a sender can publish stops camapp.
"""

from __future__ import annotations

import json
import logging

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

    def handle(self, payload: bytes) -> None:
        """Apply one received command, or say why not; runs on the MQTT network thread."""
        try:
            command = json.loads(payload)
            if not isinstance(command, dict):
                raise ControlError(f"expected a JSON object of settings, got {_json_type(command)}")
            self._controls.update(command)
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: `[[[[...`
        except (ValueError, RecursionError, ControlError) as exc:
            why = str(exc) if isinstance(exc, ControlError) else f"invalid JSON: {exc}"
            raw = payload.decode("utf-8", errors="replace")[:ECHO_LIMIT]
            log.warning("rejected command on %s: %s", self._publisher.topic("set"), why)
            error = dumps({"error": why, "payload": raw})
            # Telemetry, not KEEP: a flood of bad commands must not grow the outbox unbounded.
            self._publisher.publish("error", error, kind=Kind.TELEMETRY)
            return
        log.info("applied command %s", dumps(command))
        self.publish_config()

    def publish_config(self) -> None:
        self._publisher.publish("config", dumps(self._controls.snapshot()), retain=True)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
