"""JPEG snapshots for Home Assistant's MQTT `image` entity.

`<base>/<camera_id>/snapshot` gets a picture (raw JPEG bytes, retained, so that Home Assistant
shows the latest one after a restart) when the debounced state changes, its first value
included, and otherwise every `snapshot_interval` seconds; 0 turns snapshots off.

The picture is the next frame the camera captures after the trigger, taken from its
`FrameTap` (runtime/tap.py), so a paused camera still gets its periodic snapshots. Encoding
runs on this module's own thread, never on a worker or the capture thread, and is counted
with the camera's CPU by the governor.
"""

from __future__ import annotations

import logging
import threading
import time

from camapp.publish.state import StateSink
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result
from camapp.runtime.tap import FrameTap

log = logging.getLogger(__name__)

FRAME_WAIT_S = 5.0  # a source that delivers nothing for this long is skipped until next time


class Snapshots:
    """One camera's snapshots. As a sink (after the StateSink, in frame order on a worker
    thread) it only notices that the state changed; `run` takes and publishes the pictures on
    its own thread; `stop` ends it."""

    def __init__(
        self,
        channel: Channel,
        tap: FrameTap,
        state: StateSink,
        interval: float,
        max_width: int,
    ) -> None:
        self._channel = channel
        self.camera_id = channel.camera_id
        self._tap = tap
        self._state = state
        self._interval = interval
        self._max_width = max_width
        self._seen: str | None = None  # the state label the last trigger was for
        self._wake = threading.Event()
        self._stopping = False

    def send(self, result: Result) -> None:
        label = self._state.label
        if label != self._seen:
            self._seen = label
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def run(self) -> None:
        due = time.monotonic() + self._interval
        while True:
            self._wake.wait(max(0.0, due - time.monotonic()))
            if self._stopping:
                return
            changed = self._wake.is_set()
            self._wake.clear()
            if changed or time.monotonic() >= due:
                if not self._shoot():
                    return
                due = time.monotonic() + self._interval

    def _shoot(self) -> bool:
        """Publish the next captured frame; False once the camera's capture has ended."""
        tap = self._tap
        with tap.watching():
            got = tap.next(tap.version, FRAME_WAIT_S)
        if got is None:
            return not tap.closed
        picture = tap.encode(got[1], self._max_width)
        self._channel.publish("snapshot", picture.jpeg, retain=True)
        log.debug("snapshot of %s frame %d", self.camera_id, picture.seq)
        return True
