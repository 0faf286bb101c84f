"""What a detector camera publishes: the objects it follows, their events, and its counts as
a debounced state (docs/detection.md, docs/mqtt.md).

- `<base>/<camera_id>/objects`, one per processed frame: the tracked objects there now (id,
  label, score, box as fractions of the frame, the zones they stand in) and their counts per
  tracked label; shed first when the outbox is full, as `classification` is.
- `<base>/<camera_id>/events`: `new`, `update` and `end` of each tracked object.
- `<base>/<camera_id>/triggers`: what Home Assistant's device triggers match, one plain-text
  message per thing an event says happened (`person appeared`, `person entered porch`,
  `person left porch`, `person left`).
- `<base>/<camera_id>/state` (retained): the counts per tracked label and per zone, which
  change only when a count has held for `state_frames` processed frames, with the frame at
  which the change began.

Only the labels in `track` are tracked and counted; detections of others are left out.
Detect, then classify: a detection whose crop the workers classified brings its guess, which
the track it matches adds to its vote; the vote's leader is the object's `sub_label` (null
until its first crop is classified). A `capture` with `object` saves the crop of the best
tracked object of that label in the next processed frame (`request_crop`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from camapp.capture.base import Frame
from camapp.detect.draw import Drawn, drawn
from camapp.detect.track import Event, Track, Tracker
from camapp.detect.zones import CountDebouncer, Counts, Zone, as_settings, count
from camapp.inference.detector import Box, DetectionResult
from camapp.publish.mqtt import dumpb
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result

log = logging.getLogger(__name__)

CROP_WAIT = 10  # processed frames a `capture` of an object waits for one to be seen
FIRST_VOTES = 3  # crops of a new track classified on every frame, before `classify_every`


def objects_message(result: Result, tracks: Sequence[Track], counts: Counts) -> dict[str, Any]:
    """The `objects` payload; `sub_label` is null unless the label's crops are classified.
    `model` names the detector that answered (the ladder may step between two)."""
    found: DetectionResult = result.classification  # type: ignore[assignment]
    return {
        "frame": result.frame,
        "ts": round(result.ts, 3),
        "objects": [_tracked(track) for track in tracks],
        "counts": counts.labels,
        "model": found.model,
    }


def _tracked(track: Track) -> dict[str, Any]:
    box = [round(float(v), 4) for v in track.box]
    return {"id": track.id, "label": track.label, "score": round(track.score, 4), "box": box,
            "zones": list(track.zones), "sub_label": track.sub_label}  # fmt: skip


def event_message(event: Event) -> dict[str, Any]:
    """An `events` payload: what the tracker says of one object, times rounded to ms."""
    return {
        "type": event.type,
        "frame": event.frame,
        "id": event.id,
        "label": event.label,
        "sub_label": event.sub_label,
        "score": event.score,
        "top_score": event.top_score,
        "best": {"frame": event.best_frame, "box": list(event.best_box)},
        "box": list(event.box),
        "start": round(event.start, 3),
        "end": None if event.end is None else round(event.end, 3),
        "zones": list(event.zones),
        "entered": list(event.entered),
        "stationary": event.stationary,
    }


APPEARED, ENTERED, LEFT = "appeared", "entered", "left"  # what a trigger says of an object


def trigger(label: str, kind: str, zone: str | None = None) -> str:
    """A `triggers` payload, the one string a Home Assistant device trigger matches:
    `person appeared`, `person entered porch`, `person left porch`, `person left`."""
    return f"{label} {kind} {zone}" if zone is not None else f"{label} {kind}"


def triggers(event: Event, before: Sequence[str]) -> list[str]:
    """What an event fires, given the zones its object stood in before: a new object
    appears (and enters the zones it stands in), an update enters and leaves zones, an ended
    one leaves its zones, then leaves."""
    now = () if event.type == "end" else event.zones
    fired = [trigger(event.label, APPEARED)] if event.type == "new" else []
    fired += [trigger(event.label, ENTERED, zone) for zone in now if zone not in before]
    fired += [trigger(event.label, LEFT, zone) for zone in before if zone not in now]
    if event.type == "end":
        fired.append(trigger(event.label, LEFT))
    return fired


class ObjectsSink:
    """A detector camera's one sink: its tracker and count debounce, called in frame order,
    one result at a time, by the workers. Register `republish` with the publisher's
    `on_connected`; the source watch calls `lost`."""

    def __init__(
        self, channel: Channel, track: Sequence[str], zones: Sequence[Zone], frames: int
    ) -> None:
        self._channel = channel
        self._track = tuple(track)
        self._tracked = frozenset(track)
        self._frames = frames
        self.tracker = Tracker(zones)
        # Zones handed over by `set` without a lock on the hot path: the command's thread
        # writes `_wanted` (one tuple, replaced whole; commands are applied one at a time),
        # the worker emitting in order compares it with `_applied` before each frame and alone
        # touches the tracker and the debounce. A zone change lands between two frames.
        self._wanted: tuple[Zone, ...] = tuple(zones)
        self._applied = self._wanted
        self.latest: dict[str, Any] | None = None  # the last `objects` message (live view)
        self._debouncer = CountDebouncer(frames)
        # For the sinks after this one (snapshots), swapped whole each frame: the last
        # frame's events, and its tracked objects as drawn.
        self.events: list[Event] = []
        self.drawn: tuple[Drawn, ...] = ()
        self.states = 0  # states published: a change tells the snapshots to take one
        self._zones_of: dict[int, tuple[str, ...]] = {}  # live track id -> its zones
        # The last state, re-sent after each connection (as StateSink's, under a lock so that
        # a re-send never overtakes a newer state).
        self._payload: bytes | None = None
        self._lock = threading.Lock()
        # A `capture` of an object's crop: (dataset label, tracked label, frames left to find
        # it), one at a time, set from the MQTT thread; and who saves it (the app's).
        self._crop: tuple[str, str, int] | None = None
        self.save_crop: Callable[[Frame, str, Box, str], None] | None = None
        # Detect, then classify: the labels classified, and the flag that has the workers
        # classify every frame while a track of them has fewer than FIRST_VOTES votes.
        self.classified: frozenset[str] = frozenset()
        self.eager = threading.Event()

    def send(self, result: Result) -> None:
        found: DetectionResult = result.classification  # type: ignore[assignment]
        kept = [o for o in found.objects if o.label in self._tracked]
        boxes = np.array([o.box for o in kept], np.float64).reshape(-1, 4)
        scores = np.array([o.score for o in kept], np.float64)
        labels = [o.label for o in kept]
        guesses = [o.guess for o in kept]
        events = self._rezone(result.frame)
        events += self.tracker.update(result.frame, result.ts, boxes, scores, labels, guesses)
        tracks = self.tracker.tracks
        if self.classified:
            wanting = self.tracker.wanting(self.classified, FIRST_VOTES)
            (self.eager.set if wanting else self.eager.clear)()
        if self._crop is not None and result.picture is not None:
            self._take_crop(result.picture, tracks)
        zones = [zone.name for zone in self.tracker.zones]
        counts = count(((t.label, t.zones) for t in tracks), self._track, zones)
        message = self.latest = objects_message(result, tracks, counts)
        self._channel.publish("objects", dumpb(message), kind=Kind.BULK)
        self.events, self.drawn = events, drawn(tracks)
        for event in events:
            self._channel.publish("events", dumpb(event_message(event)))
            self._fire(event)
        state = self._debouncer.update(result.frame, counts)
        if state is not None:
            labels_now, by_zone = state.counts.labels, state.counts.zones
            self._publish_state({"frame": state.frame, "counts": labels_now, "zones": by_zone})

    def _fire(self, event: Event) -> None:
        """Publish the triggers an event fires; the zones of ended objects are forgotten."""
        if event.type == "end":
            before = self._zones_of.pop(event.id, ())
        else:
            before, self._zones_of[event.id] = self._zones_of.get(event.id, ()), event.zones
        for payload in triggers(event, before):
            self._channel.publish("triggers", payload)

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """From a `set` command (already checked): the zones from the next frame on."""
        self._wanted = tuple(zones)

    def zones(self) -> list[dict[str, Any]]:
        """The zones in force (the latest set), as `config` and the live view show them."""
        return as_settings(self._wanted)

    def _rezone(self, frame: int) -> list[Event]:
        """On the worker, before a frame: the zones a `set` handed over, if any. The debounce
        drops a deleted zone's counts at once; a new zone's join the state once they have held
        for `state_frames` frames, and the retained state is published again then."""
        wanted = self._wanted
        if wanted is self._applied:
            return []
        self._applied = wanted
        return self.tracker.set_zones(wanted, frame)

    @property
    def crop_pending(self) -> bool:
        return self._crop is not None

    def tracking(self, label: str) -> bool:
        """An object of `label` is tracked now (a crop of it can be asked for). Asked from
        the MQTT or web thread: read from the latest `objects` message, which the results
        thread replaces whole, never from the tracker it changes."""
        latest = self.latest
        return latest is not None and any(o["label"] == label for o in latest["objects"])

    def request_crop(self, label: str, of: str) -> None:
        """From the MQTT thread: save the crop of the best `of` in the next processed frame
        that shows one (within CROP_WAIT frames) under `label`."""
        self._crop = (label, of, CROP_WAIT)

    def _take_crop(self, picture: Frame, tracks: Sequence[Track]) -> None:
        """The best object (highest score, then largest box) of the label asked for, seen in
        this frame, is saved; none for CROP_WAIT frames: the request goes, said in the log."""
        label, of, left = self._crop  # type: ignore[misc]
        seen = [t for t in tracks if t.label == of and t.missed == 0]
        if not seen:
            self._crop = (label, of, left - 1) if left > 1 else None
            if self._crop is None:
                log.warning("capture: no %s seen in %d frames; nothing saved", of, CROP_WAIT)
            return
        best = max(seen, key=lambda t: (t.score, float(np.prod(t.box[2:] - t.box[:2]))))
        box = tuple(float(v) for v in best.box)
        if self.save_crop is not None:  # handed to the capture thread, which writes it
            self.save_crop(picture, label, box, of)  # type: ignore[arg-type]
        self._crop = None  # after the hand-over: a capture is always pending somewhere

    def lost(self, since: float) -> None:
        """The source has been down too long to trust the counts: the state says so (counts
        null, with the reason), from the source watch's timer; the counts start afresh."""
        self._debouncer = CountDebouncer(self._frames)  # one reference, swapped whole
        lost = {"frame": None, "counts": None, "zones": None, "since": round(since, 3),
                "reason": "source offline"}  # fmt: skip
        self._publish_state(lost)

    def _publish_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._payload = dumpb(state)
            self._channel.publish("state", self._payload, retain=True)
            self.states += 1

    def republish(self) -> None:
        with self._lock:
            if self._payload is not None:
                self._channel.publish("state", self._payload, retain=True)
