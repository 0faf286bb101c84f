"""The debounced state: what the camera sees, stable enough to drive automations.

`<base>/<camera_id>/state` (retained) is `{"label", "score", "since"}`. It changes only when
`frames` consecutive classifications agree on a new label, each scoring at least the
`threshold` in force (a Controls key, changeable at runtime); a frame below the threshold
breaks the run. A classifier that flickers between two labels, or is unsure, therefore
leaves the state alone.
"""

from __future__ import annotations

import threading

from camapp.publish.mqtt import dumps
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result
from camapp.runtime.controls import Controls


class StateSink:
    """A pipeline sink: called in frame order, one result at a time, by the workers.

    Register `republish` with the publisher's `on_connected`."""

    def __init__(self, channel: Channel, controls: Controls, frames: int) -> None:
        self._publisher = channel
        self._controls = controls
        self._frames = frames
        self._run_label: str | None = None
        self._run_length = 0
        self._run_since = 0.0
        self._label: str | None = None
        # The last payload published, re-sent after each connection in case the broker lost
        # it (a restart without persistence). The lock keeps a re-send on the network thread
        # from overtaking a newer state, which would leave the older one retained.
        self._payload: str | None = None
        self._lock = threading.Lock()

    def send(self, result: Result) -> None:
        best = result.classification.top_k[0]
        if best.score < self._controls.get("threshold"):
            self._run_label, self._run_length = None, 0
            return
        if best.label != self._run_label:
            self._run_label, self._run_length, self._run_since = best.label, 0, result.ts
        self._run_length += 1
        if self._run_length >= self._frames and best.label != self._label:
            self._label = best.label
            state = {"label": best.label, "score": best.score, "since": round(self._run_since, 3)}
            with self._lock:
                self._payload = dumps(state)
                self._publisher.publish("state", self._payload, retain=True)

    @property
    def label(self) -> str | None:
        """The debounced label (None until the first state): snapshot.py watches it."""
        return self._label

    def republish(self) -> None:
        with self._lock:
            if self._payload is not None:
                self._publisher.publish("state", self._payload, retain=True)
