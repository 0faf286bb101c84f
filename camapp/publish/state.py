"""The debounced state: what the camera sees, stable enough to drive automations.

`<base>/<camera_id>/state` (retained) is `{"label", "score", "since"}`. It changes only when
`frames` consecutive classifications agree on a new label, each scoring at least the
`threshold` in force (a Controls key, changeable at runtime). A classifier that flickers
between two labels therefore leaves the state alone. When `frames` consecutive
classifications have no label at the threshold, the state becomes `none`
(`{"label": null, "score": null, ...}`): an unsure scene is said to be one, so the state is
never stuck on a label the camera no longer sees.
"""

from __future__ import annotations

import threading

from camapp.publish.mqtt import dumps
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result
from camapp.runtime.controls import Controls

_UNSET = object()  # no state published yet


class StateSink:
    """A pipeline sink: called in frame order, one result at a time, by the workers.

    Register `republish` with the publisher's `on_connected`."""

    def __init__(self, channel: Channel, controls: Controls, frames: int) -> None:
        self._channel = channel
        self._controls = controls
        self._frames = frames
        self._run_label: str | None = None  # None: a run of frames with no label at threshold
        self._run_length = 0
        self._run_since = 0.0
        self._label: str | object | None = _UNSET  # the state published last
        # The last payload published, re-sent after each connection in case the broker lost
        # it (a restart without persistence). The lock keeps a re-send on the network thread
        # from overtaking a newer state, which would leave the older one retained.
        self._payload: str | None = None
        self._lock = threading.Lock()

    def send(self, result: Result) -> None:
        best = result.classification.top_k[0]
        sure = best.score >= self._controls.get("threshold")
        label = best.label if sure else None
        if label != self._run_label or self._run_length == 0:
            self._run_label, self._run_length, self._run_since = label, 0, result.ts
        self._run_length += 1
        if self._run_length >= self._frames and label != self._label:
            self._label = label
            score = best.score if sure else None
            state = {"label": label, "score": score, "since": round(self._run_since, 3)}
            with self._lock:
                self._payload = dumps(state)
                self._channel.publish("state", self._payload, retain=True)

    def lost(self, since: float) -> None:
        """The source has been down too long to trust the last state: publish `unknown`
        (label null, with the reason), from the source watch's timer; the next classified
        frames publish a state afresh."""
        state = {"label": None, "score": None, "since": round(since, 3),
                 "reason": "source offline"}  # fmt: skip
        with self._lock:
            self._payload = dumps(state)
            self._channel.publish("state", self._payload, retain=True)
            self._label = _UNSET  # one reference swapped: the workers see it at the next frame
            self._run_length = 0

    @property
    def label(self) -> str | None:
        """The debounced label (None until the first state): snapshot.py watches it."""
        return None if self._label is _UNSET else self._label  # type: ignore[return-value]

    def republish(self) -> None:
        with self._lock:
            if self._payload is not None:
                self._channel.publish("state", self._payload, retain=True)
