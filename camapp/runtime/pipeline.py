"""Capture -> bounded queue -> worker pool -> in-order results -> sinks.

Threads own their state and talk only through the bounded frame queue and the reorder
buffer: the capture thread owns the source, each worker owns one Classifier, and the worker
that completes the next frame in order calls the sinks. The caller's thread only starts,
waits and signals.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from camapp.capture import Frame, Source
from camapp.errors import CamappError
from camapp.governor.motion import MotionGate
from camapp.inference.litert import Classification, Classifier
from camapp.runtime.controls import Controls

log = logging.getLogger(__name__)


SKIP_REASONS = ("stride", "motion", "queue", "paused")


@dataclass(frozen=True, slots=True)
class Knobs:
    """How much work the governor allows: replaced whole, never mutated, so any thread reads it."""

    stride: int = 1  # classify 1 frame in N (the user's `stride` still applies if larger)
    max_fps: float | None = None  # read the source at most this often (None: as it delivers)
    workers: int | None = None  # active workers (None: all)


@dataclass(frozen=True, slots=True)
class Counters:
    """Running totals, as the governor samples them."""

    captured: int
    admitted: int  # frames that passed pause and stride (the motion gate and queue come after)
    classified: int
    skipped: dict[str, int]
    inference_ms: float  # summed over classified frames
    resolution: str | None  # WxH of the latest captured frame


@dataclass(slots=True)
class Result:
    """A classified frame, as handed to the sinks in frame order."""

    frame: int
    ts: float
    mono: float
    classification: Classification


class Sink(Protocol):
    """Receives results in frame order, one call at a time, on a worker thread."""

    def send(self, result: Result) -> None: ...


class FrameQueue:
    """A bounded frame queue that hands each frame out with a ticket in arrival order.

    With `drop_oldest` (cameras, streams, paced replays) a put into a full queue evicts the
    stalest frame, so latency never grows; otherwise a put blocks, so a replay processes
    every frame. Tickets are consecutive, which lets the workers emit results in frame order.
    Frames thrown away by a forced stop or a failure are counted in `discarded`.
    """

    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        self._items: deque[Frame] = deque()
        self._max = maxsize
        self._drop = drop_oldest
        # Conditions on one lock, so a put wakes one active worker and a get wakes the capture
        # thread only: waking every waiter costs a context switch and the GIL for nothing.
        # Workers the governor has made inactive wait apart, on `_parked`.
        lock = threading.Lock()
        self._filled = threading.Condition(lock)
        self._freed = threading.Condition(lock)
        self._parked = threading.Condition(lock)
        self._ticket = 0
        self._closed = False
        self._active = maxsize  # workers with a lower index may take frames
        self.dropped = 0
        self.discarded = 0

    def put(self, frame: Frame) -> None:
        with self._freed:
            if self._drop and len(self._items) >= self._max:
                self._items.popleft()
                self.dropped += 1
            while len(self._items) >= self._max and not self._closed:
                self._freed.wait()
            if self._closed:  # a forced stop or a failure closed the queue under us
                self.discarded += 1
                return
            self._items.append(frame)
            self._filled.notify()

    def set_active(self, workers: int) -> None:
        """Only workers 0..workers-1 take frames; the others wait (all drain once closed)."""
        with self._filled:
            self._active = workers
            # Newly active workers come off the bench; newly idle ones move onto it, so that a
            # put's single notify() always reaches a worker that may take the frame.
            self._parked.notify_all()
            self._filled.notify_all()

    def get(self, worker: int = 0) -> tuple[int, Frame] | None:
        """The next frame and its ticket for `worker`; None once closed and drained."""
        with self._filled:
            while not self._closed and (not self._items or worker >= self._active):
                (self._parked if worker >= self._active else self._filled).wait()
            if not self._items:
                return None
            frame = self._items.popleft()
            ticket = self._ticket
            self._ticket += 1
            self._freed.notify()
            return ticket, frame

    def close(self, discard: bool = False) -> None:
        """No more puts; workers drain what is queued, or it is discarded and counted."""
        with self._filled:
            self._closed = True
            if discard:
                self.discarded += len(self._items)
                self._items.clear()
            self._filled.notify_all()
            self._freed.notify_all()
            self._parked.notify_all()


@dataclass
class RunStats:
    captured: int = 0
    classified: int = 0
    # Frames not classified, by reason: `queue` = stale frames evicted by the latest-frame
    # policy, `stride` = skipped to classify 1 in N, `motion` = the scene had not changed,
    # `paused` = skipped while paused.
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    inference_ms: float = 0.0  # summed over classified frames
    frame_size: tuple[int, int] | None = None  # (width, height) of the latest captured frame
    discarded: int = 0  # queued frames thrown away by a forced stop
    elapsed_s: float = 0.0
    errors: list[CamappError] = field(default_factory=list)  # each keeps its exit code


class Pipeline:
    def __init__(
        self,
        source: Source,
        classifiers: list[Classifier],
        sinks: list[Sink],
        drop: bool,
        controls: Controls,
        max_frames: int | None = None,
        duration: float | None = None,
        motion: MotionGate | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.controls = controls
        self.classifiers = classifiers
        self.sinks = sinks
        self.max_frames = max_frames
        self.duration = duration
        self.motion = motion
        self.knobs = Knobs()
        self._due = 0.0  # monotonic time the next read may start, under a source fps limit
        # One queued frame per worker keeps every worker busy without letting frames go stale.
        self.frames = FrameQueue(max(2, len(classifiers)), drop_oldest=drop)
        # Results wait here until every earlier ticket is in (see _deliver).
        self._order = threading.Lock()
        self._pending: dict[int, Result] = {}
        self._next_ticket = 0
        self._emitting = False
        # The caller may share its stop event (a reconnecting source waits on it too).
        self.stopping = stopping or threading.Event()
        self._abort = threading.Event()
        self.stats = RunStats()
        self._errors: queue.SimpleQueue[CamappError] = queue.SimpleQueue()

    def stop(self) -> None:
        """Finish gracefully: stop capture, classify what is queued, publish everything."""
        self.stopping.set()

    def abort(self) -> None:
        """Abandon the queued frames (they are counted, not lost silently) and stop waiting
        for a capture that hangs (a stalled stream): a user's second signal."""
        self.stopping.set()
        self._abort.set()
        self.frames.close(discard=True)

    def apply(self, knobs: Knobs) -> None:
        """Called by the governor: the capture thread picks the knobs up at its next frame."""
        self.knobs = knobs
        self.frames.set_active(knobs.workers or len(self.classifiers))

    def counters(self) -> Counters:
        stats = self.stats
        skipped = {**stats.skipped, "queue": self.frames.dropped}
        size = stats.frame_size
        return Counters(
            captured=stats.captured,
            admitted=stats.captured - skipped["stride"] - skipped["paused"],
            classified=stats.classified,
            skipped=skipped,
            inference_ms=stats.inference_ms,
            resolution=f"{size[0]}x{size[1]}" if size else None,
        )

    def run(self) -> RunStats:
        start = time.monotonic()
        capture = threading.Thread(target=self._capture, name="capture", daemon=True)
        workers = [
            threading.Thread(target=self._work, args=(c, i), name=f"worker-{i}", daemon=True)
            for i, c in enumerate(self.classifiers)
        ]
        # --duration ends the run like a signal would, even while a live source reconnects.
        timer = threading.Timer(self.duration or 0, self.stopping.set)
        timer.daemon = True
        for thread in (capture, *workers, *([timer] if self.duration else [])):
            thread.start()
        self._wait(capture, unless=self._abort)
        timer.cancel()
        self.frames.close(discard=self._abort.is_set())
        for worker in workers:
            self._wait(worker)
        # A failed worker leaves gaps in the tickets: what did arrive is still published.
        for ticket in sorted(self._pending):
            self._emit(self._pending.pop(ticket))
        self.stats.skipped["queue"] = self.frames.dropped
        self.stats.discarded = self.frames.discarded
        self.stats.elapsed_s = time.monotonic() - start
        while not self._errors.empty():
            self.stats.errors.append(self._errors.get())
        return self.stats

    @staticmethod
    def _wait(thread: threading.Thread, unless: threading.Event | None = None) -> None:
        # Short joins keep the main thread responsive to SIGINT/SIGTERM.
        while thread.is_alive() and not (unless and unless.is_set()):
            thread.join(0.2)

    def _fail(self, error: CamappError) -> None:
        self._errors.put(error)
        self.stopping.set()

    def _capture(self) -> None:
        try:
            while not self.stopping.is_set():
                if self.max_frames is not None and self.stats.captured >= self.max_frames:
                    break
                self._throttle()
                frame = self.source.read()
                if frame is None:
                    break
                self.stats.captured += 1
                self.stats.frame_size = frame.image.shape[1::-1]
                reason = self._skip_reason(frame)
                if reason:
                    self.stats.skipped[reason] += 1
                else:
                    self.frames.put(frame)
        except Exception as exc:  # the run must end with the reason, never as a clean EOF
            self._fail(_as_error("capture", exc))
        finally:
            self.source.close()

    def _throttle(self) -> None:
        """Under a source fps limit, wait until the next read is due: a replay read later is
        a frame never decoded, which skipping inference alone cannot save."""
        max_fps = self.knobs.max_fps
        now = time.monotonic()
        if not max_fps:
            self._due = now
            return
        if self._due > now:
            self.stopping.wait(self._due - now)
            now = self._due
        self._due = now + 1.0 / max_fps

    def _skip_reason(self, frame: Frame) -> str | None:
        if self.controls.get("paused"):
            return "paused"
        if frame.seq % max(self.controls.get("stride"), self.knobs.stride):
            return "stride"
        if self.motion is not None and not self.motion.changed(frame.image, frame.mono):
            return "motion"
        return None

    def _work(self, classifier: Classifier, index: int) -> None:
        while not self._abort.is_set():
            item = self.frames.get(index)
            if item is None:
                return
            ticket, frame = item
            try:
                result = classifier.classify(frame.image, frame.bgr)
            except Exception as exc:  # a dead worker would stall the frame order for good
                self._fail(_as_error("inference", exc))
                self.frames.close(discard=True)
                return
            self._deliver(ticket, Result(frame.seq, frame.ts, frame.mono, result))

    def _deliver(self, ticket: int, result: Result) -> None:
        """Emit results in ticket order, from whichever worker completes the next one.

        That worker emits the whole run of consecutive results while the others go back to
        classifying: frame order without a publisher thread, whose queue and thread switch
        cost CPU and latency on every frame. Sinks are still called one at a time.
        """
        with self._order:
            self._pending[ticket] = result
            if self._emitting:
                return
            self._emitting = True
        while True:
            with self._order:
                ready = self._pending.pop(self._next_ticket, None)
                if ready is None:
                    self._emitting = False
                    return
                self._next_ticket += 1
            self._emit(ready)

    def _emit(self, result: Result) -> None:
        self.stats.classified += 1
        self.stats.inference_ms += result.classification.inference_ms
        for sink in list(self.sinks):
            try:
                sink.send(result)
            except Exception as exc:  # a broken sink must not stall the workers behind it
                self.sinks.remove(sink)
                self._fail(CamappError(f"{type(sink).__name__} failed: {exc}"))


def _as_error(where: str, exc: Exception) -> CamappError:
    """A failed thread's error as the run reports it: a camapp error as raised (a video
    with no decodable frame stays a usage error), anything else a one-line runtime error
    with its traceback in the debug log."""
    if isinstance(exc, CamappError):
        return exc
    log.debug("%s failed", where, exc_info=exc)
    return CamappError(f"{where} failed: {type(exc).__name__}: {exc}")
