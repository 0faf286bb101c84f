"""What a detector camera publishes: the objects it follows, their events, and its counts as
a debounced state (docs/detection.md, docs/mqtt.md).

- `<base>/<camera_id>/objects`, one per processed frame: the tracked objects there now (id,
  label, score, box as fractions of the frame, the zones they stand in) and their counts per
  tracked label; shed first when the outbox is full, as `classification` is.
- `<base>/<camera_id>/events`: `new`, `update` and `end` of each tracked object.
- `<base>/<camera_id>/state` (retained): the counts per tracked label and per zone, which
  change only when a count has held for `state_frames` processed frames, with the frame at
  which the change began.

Only the labels in `track` are tracked and counted; detections of others are left out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from camapp.detect.track import Event, Track, Tracker
from camapp.detect.zones import CountDebouncer, Counts, Zone, count
from camapp.inference.detector import DetectionResult
from camapp.publish.mqtt import dumpb
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result


def objects_message(result: Result, tracks: Sequence[Track], counts: Counts) -> dict[str, Any]:
    """The `objects` payload; `sub_label` is null until detected objects are classified.
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
            "zones": list(track.zones), "sub_label": None}  # fmt: skip


def event_message(event: Event) -> dict[str, Any]:
    """An `events` payload: what the tracker says of one object, times rounded to ms."""
    return {
        "type": event.type,
        "frame": event.frame,
        "id": event.id,
        "label": event.label,
        "sub_label": None,
        "score": event.score,
        "top_score": event.top_score,
        "box": list(event.box),
        "start": round(event.start, 3),
        "end": None if event.end is None else round(event.end, 3),
        "zones": list(event.zones),
        "entered": list(event.entered),
        "stationary": event.stationary,
    }


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
        self._debouncer = CountDebouncer(frames)
        # The last state, re-sent after each connection (as StateSink's, under a lock so that
        # a re-send never overtakes a newer state).
        self._payload: bytes | None = None
        self._lock = threading.Lock()

    def send(self, result: Result) -> None:
        found: DetectionResult = result.classification  # type: ignore[assignment]
        kept = [o for o in found.objects if o.label in self._tracked]
        boxes = np.array([o.box for o in kept], np.float64).reshape(-1, 4)
        scores = np.array([o.score for o in kept], np.float64)
        labels = [o.label for o in kept]
        events = self.tracker.update(result.frame, result.ts, boxes, scores, labels)
        tracks = self.tracker.tracks
        zones = [zone.name for zone in self.tracker.zones]
        counts = count(((t.label, t.zones) for t in tracks), self._track, zones)
        message = objects_message(result, tracks, counts)
        self._channel.publish("objects", dumpb(message), kind=Kind.BULK)
        for event in events:
            self._channel.publish("events", dumpb(event_message(event)))
        state = self._debouncer.update(result.frame, counts)
        if state is not None:
            labels_now, by_zone = state.counts.labels, state.counts.zones
            self._publish_state({"frame": state.frame, "counts": labels_now, "zones": by_zone})

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

    def republish(self) -> None:
        with self._lock:
            if self._payload is not None:
                self._channel.publish("state", self._payload, retain=True)
