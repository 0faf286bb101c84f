"""One camera as the live view shows it: its picture, its latest classification, its stats
history and its controls, each handed over from the thread that owns it in one bounded slot.

- Picture: the camera's `FrameTap` (runtime/tap.py) gives this feed's encoder thread a frame
  at most `view_fps` times a second, and only while a viewer is connected; the encoder stores
  the JPEG in `picture` (one reference, replaced whole) and wakes the server's event loop.
- Classification: a pipeline sink; the worker emitting in order stores the latest result in
  `latest` (one reference). The loop reads it when it sends a picture.
- Detections (a detector camera): its `ObjectsSink` keeps the latest `objects` message (one
  reference) and the zones in force; the overlay carries both, and the page draws the boxes
  and zones over the picture itself (no frame is re-encoded per viewer).
- Stats: the governor's `stats` messages, the last `HISTORY_S` seconds of them, in a bounded
  deque under a lock.
- Labelling (web/labelling.py): while a viewer is connected, the sink notes results under
  the threshold and the encoder keeps thumbnails of those frames in the camera's strip.
- Controls: the server's loop calls the camera's `CommandHandler.apply`, the `set` topic's own
  validation, which also publishes the new `config`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from camapp.inference.preprocess import Roi, region
from camapp.publish.commands import CommandHandler
from camapp.publish.objects import ObjectsSink
from camapp.runtime.camera import Result
from camapp.runtime.controls import Controls
from camapp.runtime.tap import FrameTap, Picture
from camapp.web.labelling import Labels

HISTORY_S = 600  # the charts' span
CHARTED = ("fps_classified", "cpu_pct", "cpu_budget", "temp_c", "power_w")


class ModelView(NamedTuple):
    """What the page says of the model a camera starts with, and the region it sees."""

    name: str
    size: tuple[int, int]  # the model's input (width, height)
    crop: str
    roi: Roi | None


@dataclass(frozen=True, slots=True)
class View:
    """A picture and what the page draws over it."""

    picture: Picture
    region: tuple[float, float, float, float]  # the model's crop: x, y, width, height in 0..1


class CameraFeed:
    def __init__(
        self,
        camera_id: str,
        tap: FrameTap,
        controls: Controls,
        commands: CommandHandler,
        model: ModelView,
        max_width: int,
        stats_interval: float,
        labels: Labels | None,
        objects: ObjectsSink | None = None,
    ) -> None:
        """`labels`: a classifier camera's labelling (None: a detector camera has none, its
        classes are not its scene's); `objects`: a detector camera's sink (None: the camera
        classifies)."""
        self.camera_id = camera_id
        self.tap = tap
        self.controls = controls
        self.commands = commands
        self.model, self._model_size, self.crop, self.roi = model
        self._max_width = max_width
        self.labels = labels
        self.objects = objects
        self.kind = "classifier" if objects is None else "detector"
        self.viewers = 0  # written on the server's loop, read by the encoder thread
        self.latest: Result | None = None
        self.picture: View | None = None
        self._stats: deque[dict[str, Any]] = deque(maxlen=max(2, round(HISTORY_S / stats_interval)))
        self._stats_lock = threading.Lock()
        self.stats_version = 0

    def send(self, result: Result) -> None:
        """The sink: keep the latest result (called in frame order by a worker)."""
        self.latest = result
        if self.viewers and self.labels is not None:
            self.labels.note(result, self.controls.get("threshold"))

    def add_stats(self, stats: dict[str, Any]) -> None:
        """A `stats` message from the governor thread."""
        point = {"t": round(time.time(), 1), **{key: stats.get(key) for key in CHARTED}}
        with self._stats_lock:
            self._stats.append(point)
            self.stats_version += 1

    def stats_history(self) -> list[dict[str, Any]]:
        with self._stats_lock:
            return list(self._stats)

    @contextmanager
    def watch(self) -> Iterator[None]:
        """A viewer is connected: the capture thread fills the tap, the encoder encodes."""
        with self.tap.watching():
            self.viewers += 1
            try:
                yield
            finally:
                self.viewers -= 1
                if not self.viewers and self.labels is not None:
                    self.labels.strip.clear()

    def encode(self, notify: Callable[[], None]) -> None:
        """The encoder thread: a JPEG of each frame the tap gives while someone views, then
        `notify()`; ends when the camera's capture does. Frames the tap gives a snapshot
        while nobody views are not encoded here."""
        seen = 0
        while (got := self.tap.next(seen)) is not None:
            seen, frame = got
            if not self.viewers:
                continue
            picture = self.tap.encode(frame, self._max_width)
            rows, cols = region(frame.image.shape, self._model_size, self.crop, self.roi)
            h, w = frame.image.shape[:2]
            box = (cols.start / w, rows.start / h, (cols.stop - cols.start) / w,
                   (rows.stop - rows.start) / h)  # fmt: skip
            self.picture = View(picture, tuple(round(v, 4) for v in box))  # type: ignore[arg-type]
            if self.labels is not None:
                self.labels.strip.seen(frame)
            notify()

    def overlay(self) -> dict[str, Any]:
        """What the page shows beside the picture: the latest classification (or a detector's
        objects and zones) and config."""
        view = self.picture
        shared = {"config": self.controls.snapshot(), "region": view.region if view else None}
        if self.objects is not None:  # a paused camera's boxes are of a frame long gone
            latest = None if shared["config"].get("paused") else self.objects.latest
            return {"objects": latest, "zones": self.objects.zones(), **shared}
        result = self.latest
        classification = None
        if result is not None:
            top = result.classification.top_k
            classification = {
                "frame": result.frame,
                "label": top[0].label,
                "score": top[0].score,
                "top_k": [{"label": p.label, "score": p.score} for p in top],
            }
        return {"classification": classification, **shared}
