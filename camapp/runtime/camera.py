"""One camera at run time: its capture thread, its frame queue, its reorder buffer, its sinks.

The capture thread owns the source. Frames go into the camera's queue on a worker pool (shared
with the other cameras that use the same model); each result comes back through `deliver()`,
which puts results back in frame order and hands them to the sinks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from camapp.capture import Frame, Source
from camapp.capture.motion import MotionGate
from camapp.errors import CamappError
from camapp.inference.classifier import Classification
from camapp.inference.detector import DetectionResult
from camapp.inference.loader import ModelSetup, Planned
from camapp.runtime.controls import Controls
from camapp.runtime.frames import Hub
from camapp.runtime.tap import FrameTap

log = logging.getLogger(__name__)

SKIP_REASONS = ("stride", "motion", "queue", "paused", "undecodable")


@dataclass(frozen=True, slots=True)
class Knobs:
    """How much work the governor allows: replaced whole, never mutated, so any thread reads it."""

    stride: int = 1  # classify 1 frame in N (the user's `stride` still applies if larger)
    max_fps: float | None = None  # read the source at most this often (None: as it delivers)
    workers: int | None = None  # workers this camera needs (None: all)
    rung: int = 0  # the model ladder's rung: 0 is the camera's own model, higher are cheaper


@dataclass(frozen=True, slots=True)
class Counters:
    """Running totals, as the governor samples them."""

    captured: int
    admitted: int  # frames that passed pause and stride (the motion gate and queue come after)
    classified: int
    skipped: dict[str, int]
    inference_ms: float  # summed over classified frames
    resolution: str | None  # WxH of the latest captured frame
    view_ms: float = 0.0  # JPEG encoding for viewers and snapshots, summed (runtime/tap.py)


@dataclass(slots=True)
class Result:
    """A frame's answer, as handed to the sinks in frame order: a classifier camera's
    classification, or a detector camera's detections (each camera's sinks know which)."""

    frame: int
    ts: float
    mono: float
    classification: Classification | DetectionResult
    # The frame itself, for a sink that cuts or draws on it (a detector camera's crops and
    # event snapshots); never written to, held only until the sinks are done with it.
    picture: Frame | None = None


class Sink(Protocol):
    """Receives results in frame order, one call at a time, on a worker thread."""

    def send(self, result: Result) -> None: ...


@dataclass
class RunStats:
    """A camera's totals. Each field has one writer: `captured`, `skipped` and `frame_size`
    the capture thread, `classified` and `inference_ms` the worker emitting in order (one at a
    time). The governor reads them unlocked: each is one int or float (one reference, swapped
    atomically under the GIL) or a dict whose keys never change, so a read is at worst one
    frame old, never torn."""

    captured: int = 0
    classified: int = 0
    # Frames not classified, by reason: `queue` = stale frames evicted by the latest-frame
    # policy, `stride` = skipped to classify 1 in N, `motion` = the scene had not changed,
    # `paused` = skipped while paused, `undecodable` = frames of a file that would not decode
    # (a corrupt stretch, skipped to the real end).
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    inference_ms: float = 0.0  # summed over classified frames
    frame_size: tuple[int, int] | None = None  # (width, height) of the latest captured frame
    discarded: int = 0  # queued frames thrown away by a forced stop
    elapsed_s: float = 0.0


@dataclass
class CameraPlan:
    """What a camera does with its frames, fixed for the run."""

    camera_id: str
    crop: str = "center"
    roi: tuple[float, float, float, float] | None = None  # fractions of the frame
    max_frames: int | None = None
    motion: MotionGate | None = None
    # Saves a frame a `capture` command asked for (runtime/actions.py); None: no dataset.
    save: Callable[[Camera, Frame, str], None] | None = None
    # Detect, then classify: a tracked label's classifier, whose crops of that label the
    # workers classify every `classify_every` processed frames (the tracks vote).
    classify: dict[str, ModelSetup] = field(default_factory=dict)
    classify_every: int = 5
    # Set (by the camera's ObjectsSink) while a track of those labels has too few votes: its
    # crops are then classified every frame, so that a new object has its sub_label at once.
    eager: threading.Event = field(default_factory=threading.Event)


class Camera:
    """`ladder` is the camera's model first, then cheaper models with the same labels that
    the governor may step down to (a detector: itself alone); `current` is the one its frames
    are classified (or detected) with."""

    def __init__(
        self,
        plan: CameraPlan,
        ladder: tuple[Planned, ...],
        source: Source,
        sinks: list[Sink],
        controls: Controls,
        hub: Hub[Camera],
        drop: bool,
        stopping: threading.Event,
        fail: FailHook,
    ) -> None:
        self.plan = plan
        self.camera_id = plan.camera_id
        self.source = source
        self.sinks = sinks
        self.controls = controls
        # A frame per worker (at least 2) keeps every worker busy without letting frames go
        # stale. Twice that where puts block (replays), and up to 4 MB of frames: the capture
        # thread is woken at half a queue (frames.FrameQueue), seldom for small frames.
        slots = max(2, hub.workers) * (1 if drop else 2)
        self.frames = hub.queue(self, slots, drop_oldest=drop)
        self._fail = fail
        self.knobs = Knobs()
        self.ladder = ladder
        # Read by the workers at every frame: one reference, swapped whole (never mutated).
        self.current = ladder[0]
        self.stats = RunStats()
        # The latest frame for the live view and snapshots, filled only while watched.
        self.tap = FrameTap()
        self.stopping = stopping  # the run's: a reconnecting source waits on it too
        self._due = 0.0  # monotonic time the next read may start, under a source fps limit
        # Results wait here until every earlier ticket is in (see deliver).
        self._order = threading.Lock()
        self._pending: dict[int, Result] = {}
        self._next_ticket = 0
        self._emitting = False
        # What the capture thread does with its next frame: save it, or an object's crop.
        self._capture: Callable[[Frame], None] | None = None
        self._capture_lock = threading.Lock()
        self._model_lock = threading.Lock()  # `ladder` and `current`: governor against `set`

    def request_capture(self, label: str) -> None:
        """From the MQTT thread: the capture thread saves its next frame under `label`."""
        save = self.plan.save
        if save is not None:
            self.keep_next(lambda frame: save(self, frame, label))

    def keep_next(self, job: Callable[[Frame], None]) -> None:
        """From the MQTT thread (a frame to save) or the results thread (an object's crop):
        the capture thread runs `job` with its next frame, so a disk write holds up neither
        MQTT nor the results in order. One slot: a job that finds it taken is dropped, said
        in the log (`capture` refuses a second one while one is pending, but a crop and a
        frame asked for at the same instant can both pass that check)."""
        with self._capture_lock:
            if self._capture is not None:
                log.warning("camera %s: a capture is still pending; this one is not saved",
                            self.camera_id)  # fmt: skip
                return
            self._capture = job

    @property
    def capture_pending(self) -> bool:
        """A `capture` still waits for the next frame (a second one would be dropped)."""
        return self._capture is not None

    def apply(self, knobs: Knobs) -> None:
        """Called by the governor: the capture thread picks the knobs up at its next frame,
        the workers the model at theirs."""
        self.knobs = knobs
        with self._model_lock:  # a switch between reading the ladder and `current` wins
            ladder = self.ladder
            self.current = ladder[min(knobs.rung, len(ladder) - 1)]
        self.frames.hub.set_demand(self.frames, knobs.workers)

    def switch(self, ladder: tuple[Planned, ...]) -> None:
        """Another model (a `set` command): its ladder replaces the old, from the top rung.
        Under the lock the governor's `apply` takes, so neither leaves `current` on a model of
        the other's ladder."""
        with self._model_lock:
            self.ladder = ladder
            self.current = ladder[0]

    def counters(self) -> Counters:
        stats = self.stats
        skipped = {**stats.skipped, "queue": self.frames.dropped, "undecodable": self._broken()}
        size = stats.frame_size
        return Counters(
            captured=stats.captured,
            admitted=stats.captured - skipped["stride"] - skipped["paused"],
            classified=stats.classified,
            skipped=skipped,
            inference_ms=stats.inference_ms,
            resolution=f"{size[0]}x{size[1]}" if size else None,
            view_ms=self.tap.spent_ms,
        )

    def capture(self) -> None:
        """The capture thread: read, skip by rule, queue; then close the queue."""
        try:
            while not self.stopping.is_set():
                if self.plan.max_frames is not None and self.stats.captured >= self.plan.max_frames:
                    break
                self._throttle()
                frame = self.source.read()
                if frame is None:
                    break
                self.stats.captured += 1
                self.stats.frame_size = frame.image.shape[1::-1]
                if self._capture is not None:
                    self._save(frame)
                if self.tap.watchers:
                    self.tap.offer(frame)
                reason = self._skip_reason(frame)
                if reason:
                    self.stats.skipped[reason] += 1
                else:
                    self.frames.put(frame)
        except Exception as exc:  # the run must end with the reason, never as a clean EOF
            self._fail(as_error("capture", exc))
        finally:
            if self._capture is not None:
                log.warning(
                    "camera %s: the source ended before a capture was saved", self.camera_id
                )
            self.source.close()
            self.frames.close()
            self.tap.close()

    def _save(self, frame: Frame) -> None:
        with self._capture_lock:
            job, self._capture = self._capture, None
        if job is None:
            return
        try:
            job(frame)
        except Exception as exc:  # a full disk must not stop the camera
            log.warning("camera %s: cannot save the frame: %s", self.camera_id, exc)

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
        motion = self.plan.motion
        if motion is not None and not motion.changed(frame.image, frame.mono):
            return "motion"
        return None

    def deliver(self, ticket: int, result: Result) -> None:
        """Emit results in ticket order, from whichever worker completes the next one.

        That worker emits the whole run of consecutive results while the others go back to
        classifying: frame order without a publisher thread, whose queue and thread switch
        cost CPU and latency on every frame. Sinks are still called one at a time. A result
        that is the next one goes straight to the sinks, without a stop in `_pending`.
        """
        with self._order:
            if self._emitting or ticket != self._next_ticket:
                self._pending[ticket] = result  # the worker emitting, or the next one's, will
                return
            self._emitting = True
            self._next_ticket += 1
        while True:
            self._emit(result)
            with self._order:
                ready = self._pending.pop(self._next_ticket, None)
                if ready is None:
                    self._emitting = False
                    return
                self._next_ticket += 1
            result = ready

    def _broken(self) -> int:
        return getattr(self.source, "undecodable", 0)  # only files have frames that do not

    def flush(self) -> None:
        """After the workers are gone: a failed worker leaves gaps in the tickets, and what
        did arrive is still published."""
        for ticket in sorted(self._pending):
            self._emit(self._pending.pop(ticket))
        self.stats.skipped["queue"] = self.frames.dropped
        self.stats.skipped["undecodable"] = self._broken()
        self.stats.discarded = self.frames.discarded

    def _emit(self, result: Result) -> None:
        self.stats.classified += 1
        self.stats.inference_ms += result.classification.inference_ms
        for sink in list(self.sinks):
            try:
                sink.send(result)
            except Exception as exc:  # a broken sink must not stall the workers behind it
                self.sinks.remove(sink)
                self._fail(CamappError(f"{type(sink).__name__} failed: {exc}"))


class FailHook(Protocol):
    def __call__(self, error: CamappError) -> None: ...


def as_error(where: str, exc: Exception) -> CamappError:
    """A failed thread's error as the run reports it: a camapp error as raised (a video
    with no decodable frame stays a usage error), anything else a one-line runtime error
    with its traceback in the debug log."""
    if isinstance(exc, CamappError):
        return exc
    log.debug("%s failed", where, exc_info=exc)
    return CamappError(f"{where} failed: {type(exc).__name__}: {exc}")
