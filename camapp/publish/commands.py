"""Runtime control over MQTT: `<base>/<camera_id>/set` takes a JSON object of settings.

A command is validated whole by `Controls.update()` and applied all or nothing. Applied:
the settings in force are published retained on `config`. Rejected (larger than
MAX_COMMAND_BYTES, bad JSON, not an object, unknown key, wrong type, out of range): nothing
changes, and `error` gets `{"error": why, "payload": what was received}`, both clipped, as is
the log line: a huge command is never echoed back or logged whole. Nothing a sender can
publish stops camapp.
"""

from __future__ import annotations

import json
import logging

from camapp.publish.mqtt import dumps
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.controls import ControlError, Controls

log = logging.getLogger(__name__)

# Characters of a received command echoed on `error` and in the log: a huge bad command
# must not be amplified (the reason can quote the sender's key or value, so it is clipped too).
ECHO_LIMIT = 100
# A command is a handful of settings; anything larger is refused before it is parsed.
MAX_COMMAND_BYTES = 64 * 1024


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
            if len(payload) > MAX_COMMAND_BYTES:
                raise ControlError(
                    f"command of {len(payload)} bytes, larger than {MAX_COMMAND_BYTES} bytes"
                )
            command = json.loads(payload)
            if not isinstance(command, dict):
                raise ControlError(f"expected a JSON object of settings, got {_json_type(command)}")
            self._controls.update(command)
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: `[[[[...`
        except (ValueError, RecursionError, ControlError) as exc:
            self._reject(
                payload, str(exc) if isinstance(exc, ControlError) else f"invalid JSON: {exc}"
            )
            return
        log.info("applied command %s", dumps(command))  # known keys, valid values: short
        self.publish_config()

    def _reject(self, payload: bytes, why: str) -> None:
        why = clip(why, ECHO_LIMIT + 60)  # the reason around a quoted key or value
        raw = clip(payload.decode("utf-8", errors="replace"))
        log.warning("rejected command on %s: %s", self._publisher.topic("set"), why)
        error = dumps({"error": why, "payload": raw})
        # Telemetry, not KEEP: a flood of bad commands must not grow the outbox unbounded.
        self._publisher.publish("error", error, kind=Kind.TELEMETRY)

    def publish_config(self) -> None:
        self._publisher.publish("config", dumps(self._controls.snapshot()), retain=True)


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters, saying so: "abc… (1048576 characters)"."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
