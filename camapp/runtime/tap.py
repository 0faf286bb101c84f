"""A camera's latest frame for those who look at it: the live view and the snapshots.

The capture thread hands frames over in one slot, and only while someone watches: with no
watcher, `offer()` is one attribute read per frame. While watched it replaces the slot at
most `fps` times a second and never waits (the slot holds a reference to the frame's image,
which no one writes to after capture). Readers wait in `next()` for a newer frame than the
one they had, so a slow reader skips frames instead of queueing them.

JPEG encoding happens on the readers' threads, never on the capture thread, through
`encode()`, which adds its time to `spent_ms`: the governor counts it with the camera's
inference time when it shares the process's CPU out among the cameras.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from camapp.capture.base import Frame

JPEG_QUALITY = 75  # looks clean at 640x480 and costs a third less than OpenCV's default of 95


@dataclass(frozen=True, slots=True)
class Picture:
    """An encoded frame."""

    seq: int  # the frame's number in its source
    jpeg: bytes


class FrameTap:
    def __init__(self, fps: float = 5.0) -> None:
        self.watchers = 0  # written under the lock, read by the capture thread without it
        self.spent_ms = 0.0  # encoding time, summed; written under the lock
        self._interval = self._slack = 0.0
        self.set_rate(fps)
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._version = 0
        self._due = 0.0  # monotonic time from which the next frame is taken
        self._closed = False

    def set_rate(self, fps: float) -> None:
        self._interval = 1.0 / fps
        self._slack = self._interval / 10

    def offer(self, frame: Frame) -> None:
        """The capture thread's side: keep `frame` if someone watches and one is due."""
        if not self.watchers or frame.mono < self._due - self._slack:
            return
        with self._cond:
            # On a grid of `interval`, so a source's jitter cannot halve the rate, while the
            # average stays within the cap; after a pause the grid starts again from now.
            self._due = max(self._due, frame.mono - self._slack) + self._interval
            self._frame = frame
            self._version += 1
            self._cond.notify_all()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """While inside, the capture thread fills the slot."""
        with self._cond:
            self.watchers += 1
        try:
            yield
        finally:
            with self._cond:
                self.watchers -= 1

    @property
    def version(self) -> int:
        return self._version

    @property
    def closed(self) -> bool:
        return self._closed

    def next(self, after: int, timeout: float | None = None) -> tuple[int, Frame] | None:
        """The latest frame once it is newer than version `after`; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > after or self._closed, timeout)
            if self._closed or self._version <= after or self._frame is None:
                return None
            return self._version, self._frame

    def close(self) -> None:
        """Wake every reader for good: the run is over."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def encode(
        self, frame: Frame, max_width: int, draw: Callable[[np.ndarray], None] | None = None
    ) -> Picture:
        """The frame as a JPEG, no wider than `max_width`, with what `draw` draws on its
        scaled BGR copy (the frame itself is never written to); the cost is counted in
        `spent_ms`."""
        start = time.perf_counter()
        image = frame.image
        height, width = image.shape[:2]
        if width > max_width:
            height, width = max(1, round(height * max_width / width)), max_width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        if not frame.bgr:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if draw is not None:
            image = image.copy() if image is frame.image else image
            draw(image)
        ok, data = cv2.imencode(".jpg", image, (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
        if not ok:
            raise ValueError("JPEG encoding failed")
        spent = (time.perf_counter() - start) * 1000
        with self._cond:
            self.spent_ms += spent
        return Picture(frame.seq, data.tobytes())
