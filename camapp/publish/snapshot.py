"""JPEG snapshots for Home Assistant's MQTT `image` entities.

`<base>/<camera_id>/snapshot` gets a picture (raw JPEG bytes, retained, so that Home Assistant
shows the latest one after a restart) when the debounced state changes, its first value
included, and otherwise every `snapshot_interval` seconds; 0 turns snapshots off. The picture
is the next frame the camera captures after the trigger, taken from its `FrameTap`
(runtime/tap.py), so a paused camera still gets its periodic snapshots; a detector camera's
has the boxes of the objects it tracks now drawn on it.

A detector camera also gets `<base>/<camera_id>/snapshot/<label>` (`EventSnapshots`; the
label made a topic level by `topics.slug`): the frame at which a tracked object of that
label scored best since it was confirmed, with the boxes of that frame, when the object is
confirmed, when an update of it comes with a better score, and when it ends with a better
one. A live track keeps its best frame (a reference to the captured frame, never a copy) only
until that frame is handed over to be published or the track ends, and the camera keeps at
most MAX_HELD such frames: a car park of parked cars holds none once each was pictured, and a
crowd's best frames beyond MAX_HELD are let go (those objects keep the picture last sent).

Encoding runs on this module's own threads, never on a worker or the capture thread, and is
counted with the camera's CPU by the governor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from camapp.capture.base import Frame
from camapp.detect.draw import Drawn, draw_objects, drawn
from camapp.detect.track import Track
from camapp.publish.objects import ObjectsSink
from camapp.publish.topics import Channel, slug
from camapp.runtime.camera import Result
from camapp.runtime.controls import Controls
from camapp.runtime.tap import FrameTap

log = logging.getLogger(__name__)

MAX_HELD = 8  # best frames a detector camera keeps for pictures not yet sent

FRAME_WAIT_S = 5.0  # a source that delivers nothing for this long is skipped until next time


class Shooter:
    """A camera's picture thread: `run` it, wake it with `_wake`, `stop` ends it."""

    def __init__(self, channel: Channel, tap: FrameTap, max_width: int) -> None:
        self._channel = channel
        self.camera_id = channel.camera_id
        self._tap = tap
        self._max_width = max_width
        self._wake = threading.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()


class Snapshots(Shooter):
    """One camera's snapshots. As a sink (after the sink that publishes the state, in frame
    order on a worker thread) it only notices that the state changed (`state()`'s value
    did); `run` takes and publishes the pictures on its own thread, with what `draw` draws
    on them."""

    def __init__(
        self,
        channel: Channel,
        tap: FrameTap,
        state: Callable[[], object],
        interval: float,
        max_width: int,
        draw: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        super().__init__(channel, tap, max_width)
        self._state = state
        self._interval = interval
        self._draw = draw
        self._seen: object = None  # the state the last trigger was for

    def send(self, result: Result) -> None:
        state = self._state()
        if state != self._seen:
            self._seen = state
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
        picture = tap.encode(got[1], self._max_width, self._draw)
        self._channel.publish("snapshot", picture.jpeg, retain=True)
        log.debug("snapshot of %s frame %d", self.camera_id, picture.seq)
        return True


@dataclass(slots=True)
class Best:
    """A live track's best frame so far, and the score its label's topic last got from it."""

    score: float
    frame: Frame | None  # None once handed over to be published (or let go)
    objects: tuple[Drawn, ...]  # the tracked objects of that frame
    published: float = 0.0


class EventSnapshots(Shooter):
    """A detector camera's picture of each tracked object at its best: a sink after the
    ObjectsSink (reading its tracker and the events of the same frame), which keeps a live
    track's best frame until it is handed over (at most MAX_HELD of them) and hands the
    pictures to publish to `run`'s thread, one slot per label (a newer picture of a label
    replaces one not yet sent)."""

    def __init__(
        self, channel: Channel, tap: FrameTap, objects: ObjectsSink, max_width: int
    ) -> None:
        super().__init__(channel, tap, max_width)
        self._objects = objects
        self._best: dict[int, Best] = {}  # live track id -> its best frame
        self._due: dict[str, tuple[Frame, tuple[Drawn, ...]]] = {}  # label -> to publish
        self._lock = threading.Lock()

    def send(self, result: Result) -> None:
        live = self._objects.tracker.live
        if result.picture is not None:
            self._note(result, live)
        for event in self._objects.events:
            best = self._best.get(event.id)
            if best is not None and best.frame is not None and best.score > best.published:
                best.published = best.score
                with self._lock:
                    self._due[event.label] = (best.frame, best.objects)
                best.frame = None  # the slot above holds it until it is sent
                self._wake.set()
        ids = {t.id for t in live}
        for gone in [i for i in self._best if i not in ids]:  # ended: its frame goes
            del self._best[gone]

    def _note(self, result: Result, live: list[Track]) -> None:
        """Keep this frame for each track whose top score it is (the tracker's
        `best_frame`), with the confirmed objects matched in it (and the track itself)."""
        assert result.picture is not None
        bettered = [t for t in live if t.best_frame == result.frame]
        if not bettered:  # most frames: no object's best
            return
        shown = drawn(t for t in live if t.confirmed and not t.missed)
        held = sum(best.frame is not None for best in self._best.values())
        for track in bettered:
            before = self._best.get(track.id)
            holds = before is not None and before.frame is not None
            if not holds and held >= MAX_HELD:
                continue  # bounded: this object keeps the picture last sent
            held += not holds
            objects = shown if track.confirmed else shown + drawn([track])
            published = before.published if before is not None else 0.0
            self._best[track.id] = Best(track.top_score, result.picture, objects, published)

    def run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                due, self._due = self._due, {}
            for label, (frame, objects) in due.items():
                picture = self._tap.encode(frame, self._max_width, _drawer(objects))
                self._channel.publish(f"snapshot/{slug(label)}", picture.jpeg, retain=True)
                log.debug("snapshot of %s's %s at frame %d", self.camera_id, label, frame.seq)
            if self._stopping:
                return


def _drawer(objects: tuple[Drawn, ...]) -> Callable[[np.ndarray], None]:
    return lambda image: draw_objects(image, objects)


def objects_drawer(objects: ObjectsSink, controls: Controls) -> Callable[[np.ndarray], None]:
    """Draws a detector camera's tracked objects as they are when the picture is taken; none
    while it is paused, when they are of a frame that may be long gone."""
    return lambda image: draw_objects(image, () if controls.get("paused") else objects.drawn)
