"""Runtime control over MQTT: `<base>/<camera_id>/set` takes a JSON object of settings.

A command is validated whole and applied all or nothing: the runtime settings by
`Controls.update()`, and the actions (`model`: switch to another model; `capture`: save the
next frame, or with `object` a tracked object's crop, into the camera's dataset under a
label) by their `prepare()`, which checks the value and returns what applies it. A command
that switches model loads it on the handler's own thread (one at a time, one more waiting):
the network thread never reads a model.
Applied: the settings in force are published retained on `config`. Rejected (larger than
MAX_COMMAND_BYTES, bad JSON, not an object, unknown key, wrong type, out of range): nothing
changes, and `error` gets `{"error": why, "payload": what was received}`, both clipped, as is
the log line: a huge command is never echoed back or logged whole. A flood is refused
unread past COMMAND_BURST commands, then COMMANDS_PER_S a second, and answered once a second,
so that its answers never crowd classifications out of the outbox. Nothing a sender can
publish stops camapp.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from camapp.config.schema import RUNTIME_KEYS
from camapp.errors import CamappError, echo
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
# Characters of an applied command its log line keeps: a detector's zones may take 60 kB.
LOGGED = 1000
# Commands that load a model waiting behind the one loading; more are refused.
MAX_WAITING = 1
# Commands a camera takes over MQTT: COMMAND_BURST at once, then COMMANDS_PER_S a second.
# Each is answered (`config` or `error`); a flood answered as fast as it came filled the
# outbox faster than the broker took it, and the outbox sheds classifications first. Past
# the rate a command is refused unread, and those refusals are answered once a second.
COMMANDS_PER_S = 20
COMMAND_BURST = 100
FLOODED = f"more than {COMMANDS_PER_S} commands a second"


class Action(Protocol):
    """A command key that is not a setting: checks a value, returns what applies it. Keys
    named in an action's `options` (if it has any) come with its key only, as keywords of
    `prepare` (`{"capture": "p1", "object": "person"}`)."""

    def prepare(self, value: Any) -> Callable[[], None]: ...


class CommandHandler:
    """Handles `set` (subscribe `handle`); publishes `config` (retained) and `error`.

    Register `publish_config` with the publisher's `on_connected`: once at start (the first
    connection), and again after each reconnection in case the broker lost its retained copy.
    `state` adds what the actions have in force (the model) to `config`. A command with a
    `slow` key (one whose action loads a model) is checked on the network thread, then waits
    for the handler's own thread, which applies it (or says why not) while the network thread
    goes on publishing and taking other commands.
    """

    def __init__(
        self,
        channel: Channel,
        controls: Controls,
        actions: Mapping[str, Action] | None = None,
        state: Callable[[], dict[str, Any]] | None = None,
        slow: Collection[str] = (),
    ) -> None:
        self.channel = channel
        self._controls = controls
        self._actions = dict(actions or {})
        # option -> the action key it comes with
        self._options = {option: key for key, action in self._actions.items()
                         for option in getattr(action, "options", ())}  # fmt: skip
        self._not_settings = frozenset(self._actions) | frozenset(self._options)
        self._state = state
        self._slow = frozenset(slow)
        self._later = Later(f"{channel.camera_id}-commands")
        self._rate = TokenBucket(COMMANDS_PER_S, COMMAND_BURST)  # MQTT's and the live view's
        # Commands past the rate not yet said (the MQTT thread counts, a timer says), and
        # when they were last said (monotonic).
        self._unread_lock = threading.Lock()
        self._unread = 0
        self._unread_said = -1.0
        # Commands come from the MQTT thread, the live view's and the handler's own: applied
        # one at a time, so that the last `config` published is always the settings in force.
        self._lock = threading.RLock()

    def handle(self, payload: bytes) -> None:
        """Take one received command, or say why not; runs on the MQTT network thread."""
        if not self._rate.take():
            self._flooded(payload)
            return
        self._answer(payload, lambda: self._take(payload))

    def _flooded(self, payload: bytes) -> None:
        """A command past the rate: refused unread. The first of a second's refusals starts
        the answer that says how many there were, due a second after the last such answer,
        so that every refusal is said, the last of a flood too, and none waits over 1 s."""
        with self._unread_lock:
            self._unread += 1
            if self._unread > 1:  # an answer is due already
                return
            due = max(0.0, self._unread_said + 1.0 - time.monotonic())
        timer = threading.Timer(due, self._say_unread, (payload,))
        timer.daemon = True
        timer.start()

    def _say_unread(self, payload: bytes) -> None:
        with self._unread_lock:
            count, self._unread = self._unread, 0
            self._unread_said = time.monotonic()
        self._reject(payload, f"{FLOODED}: {count} refused unread since the last such answer")

    def _take(self, payload: bytes) -> None:
        if len(payload) > MAX_COMMAND_BYTES:
            raise ControlError(
                f"command of {len(payload)} bytes, larger than {MAX_COMMAND_BYTES} bytes"
            )
        command = json.loads(payload)
        if not isinstance(command, dict):
            raise ControlError(f"expected a JSON object of settings, got {_json_type(command)}")
        if self._slow.isdisjoint(command):
            self.apply(command, "MQTT")
            return
        self._check(command)  # what is wrong with it is said at once
        self._later.submit(lambda: self._answer(payload, lambda: self.apply(command, "MQTT")))

    def in_turn(self, command: Mapping[str, Any], via: str) -> Future[dict[str, Any]]:
        """`apply` for a caller that awaits the settings in force (the live view), counted
        against the same rate as MQTT's commands (past it: Flooded). A command that loads a
        model takes its turn where MQTT's do (one loads, MAX_WAITING wait, more are refused:
        ControlError) and the Future is done once it is applied; any other is applied before
        this returns."""
        if not self._rate.take():
            raise Flooded(f"{FLOODED}: refused unread")
        done: Future[dict[str, Any]] = Future()
        if self._slow.isdisjoint(command):
            done.set_result(self.apply(command, via))
            return done
        self._check(command)  # what is wrong with it is said at once

        def job() -> None:
            # Applied even if the caller stopped waiting (the page closed, the server stops):
            # a cancelled Future takes no result, and must not be handed one.
            waited = done.set_running_or_notify_cancel()
            try:
                config = self.apply(command, via)
            except Exception as exc:  # handed to the caller awaiting it
                if waited:
                    done.set_exception(exc)
                return
            if waited:
                done.set_result(config)

        self._later.submit(job)
        return done

    def _answer(self, payload: bytes, call: Callable[[], object]) -> None:
        """Run `call`; a command it refuses goes to `error`."""
        try:
            call()
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: `[[[[...`
        except (ValueError, RecursionError, ControlError, CamappError) as exc:
            why = f"invalid JSON: {exc}" if type(exc) in _JSON_ERRORS else str(exc)
            self._reject(payload, why)

    def apply(self, command: Mapping[str, Any], via: str) -> dict[str, Any]:
        """Validate and apply a command (all or nothing, else ControlError), publish the
        settings now in force on `config`, and return them (`in_turn` for the live view)."""
        self._check(command)
        # Unlocked: a model loads while others' commands go on. The other actions are checked
        # under the lock, so that two commands at once cannot both pass a check that the
        # first one's commit settles (two captures against one a minute).
        prepared = self._prepared(command, self._slow)
        with self._lock:
            prepared |= self._prepared(command, self._actions.keys() - self._slow)
            self._controls.update({k: v for k, v in command.items() if k not in self._not_settings})
            for key in self._actions:
                if key in prepared:
                    prepared[key]()
            log.info("applied command %s (%s)", clip(dumps(dict(command)), LOGGED), via)
            return self.publish_config()

    def _check(self, command: Mapping[str, Any]) -> None:
        """Every key known and every setting valid, else ControlError."""
        for key in command:
            if key not in RUNTIME_KEYS and key not in self._not_settings:
                known = ", ".join((*RUNTIME_KEYS, *self._actions))
                raise ControlError(f"unknown setting {echo(key)} (known: {known})")
            if key in self._options and self._options[key] not in command:
                raise ControlError(f"{key}: only with {self._options[key]}")
        self._controls.check({k: v for k, v in command.items() if k not in self._not_settings})

    def _prepared(
        self, command: Mapping[str, Any], keys: Collection[str]
    ) -> dict[str, Callable[[], None]]:
        """The commits of the command's actions among `keys`, each value checked first."""
        return {
            key: action.prepare(command[key], **{o: command[o] for o in
                                                 getattr(action, "options", ()) if o in command})
            for key, action in self._actions.items() if key in command and key in keys
        }  # fmt: skip

    def _reject(self, payload: bytes, why: str) -> None:
        why = clip(why, ECHO_LIMIT + 60)  # the reason around a quoted key or value
        raw = clip(payload.decode("utf-8", errors="replace"))
        log.warning("rejected command on %s: %s", self.channel.topic("set"), why)
        error = dumps({"error": why, "payload": raw})
        # Telemetry, not KEEP: a flood of bad commands must not grow the outbox unbounded.
        self.channel.publish("error", error, kind=Kind.TELEMETRY)

    def publish_config(self) -> dict[str, Any]:
        with self._lock:
            config = self._controls.snapshot() | (self._state() if self._state else {})
            self.channel.publish("config", dumps(config), retain=True)
        return config


class TokenBucket:
    """`take()` says whether one more is within `rate` a second, over a burst of `burst`;
    thread-safe (MQTT's network thread and the live view's take from one camera's)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class Flooded(ControlError):
    """A command past COMMANDS_PER_S, refused unread (the live view answers 429)."""


class Later:
    """One thread, started at the first job, that runs jobs in order: one runs, at most
    MAX_WAITING wait, and a job past them is refused, never queued without bound."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not yet done, the running one included

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._pending > MAX_WAITING:
                raise ControlError(
                    "model: another switch waits already; send it again once `config` changes"
                )
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # the thread must outlive a failed job, or every later one waits
                log.exception("command failed")
            finally:
                with self._lock:
                    self._pending -= 1


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters, saying so: "abc… (1048576 characters)"."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


_JSON_ERRORS = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
