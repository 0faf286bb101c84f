"""Labelling from the live view: which classes a camera's buttons offer, the strip of frames
its model was unsure of, and training a model on its dataset.

- Classes: a model `camapp train` made has the classes to teach; any other model's classes
  are not the scene's, so the buttons offer the dataset's class folders (the page adds new
  ones). A button sends `{"capture": LABEL}` through the `set` topic's own validation.
- The strip: while someone views, each classified frame whose top score is under the
  camera's threshold and that the tap also gave the viewer (at most `view_fps` a second) is
  kept with a small JPEG, at most one a second, the last STRIP_SIZE of them; labelling one
  saves the frame as a `capture` does (runtime/actions.py). Nobody viewing: nothing is kept.
- Training: one at a time per process, on its own thread at low priority, from the camera's
  model (or the base of a model camapp trained) with the camera's view; the model is
  written beside the dataset and the page offers to switch to it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from camapp.capture.base import Frame
from camapp.datasets import check_label, class_dirs
from camapp.errors import CamappError, ConfigError
from camapp.inference.loader import ModelSetup
from camapp.runtime.camera import Camera, Result
from camapp.runtime.tap import FrameTap

log = logging.getLogger(__name__)

STRIP_SIZE = 8
STRIP_SPACING_S = 1.0  # between the frames of the strip: eight views of the scene, not one
THUMB_WIDTH = 160


@dataclass(frozen=True, slots=True)
class Doubt:
    """A frame the model was unsure of: its thumbnail, and the frame itself to save."""

    number: int  # what the page names it by: counts up for the run
    label: str
    score: float
    jpeg: bytes
    frame: Frame


class Strip:
    """The latest STRIP_SIZE low-confidence frames. `note` runs on the worker emitting the
    camera's results, `seen` on the feed's encoder thread, both only while someone views;
    the server's loop reads and takes entries. One lock, never held while encoding."""

    def __init__(self, tap: FrameTap, size: int = STRIP_SIZE) -> None:
        self._tap = tap
        # The tap's latest frames: a result comes back within a frame or two of its frame.
        self._frames: deque[Frame] = deque(maxlen=3)
        self._doubts: deque[tuple[int, str, float]] = deque(maxlen=size)  # not yet matched
        self._entries: deque[Doubt] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._last = -STRIP_SPACING_S  # the newest entry's frame time (monotonic)

    def note(self, result: Result, threshold: float) -> None:
        top = result.classification.top_k[0]
        if top.score < threshold:
            with self._lock:
                self._doubts.append((result.frame, top.label, top.score))

    def seen(self, frame: Frame) -> None:
        """A frame the tap gave: thumbnails for the doubts about it, or about an earlier
        frame it still holds; doubts about a later frame wait for it."""
        with self._lock:
            self._frames.append(frame)
            held = {f.seq: f for f in self._frames}
            due = [(held[seq], label, score) for seq, label, score in self._doubts if seq in held]
            due = [doubt for doubt in due if self._spaced(doubt[0])]
            later = [doubt for doubt in self._doubts if doubt[0] > frame.seq]
            self._doubts.clear()
            self._doubts.extend(later)
        for image, label, score in due:  # encoding outside the lock: the worker never waits
            jpeg = self._tap.encode(image, THUMB_WIDTH).jpeg
            with self._lock:
                self._entries.append(Doubt(next(self._numbers), label, score, jpeg, image))

    def _spaced(self, frame: Frame) -> bool:
        if frame.mono - self._last < STRIP_SPACING_S:
            return False
        self._last = frame.mono
        return True

    def entries(self) -> list[Doubt]:
        with self._lock:
            return list(self._entries)

    def take(self, number: int) -> Doubt | None:
        """The entry, off the strip (it is being labelled), or None if it has gone."""
        with self._lock:
            for entry in self._entries:
                if entry.number == number:
                    self._entries.remove(entry)
                    return entry
        return None

    def clear(self) -> None:
        """Nobody views: let the frames go."""
        with self._lock:
            self._entries.clear()
            self._frames.clear()
            self._doubts.clear()


class Labels:
    """One camera's labelling: its dataset, its classes, its strip."""

    def __init__(self, camera: Camera, dataset: Path) -> None:
        self.camera = camera
        self.dataset = dataset
        self.strip = Strip(camera.tap)
        self._model: ModelSetup | None = None  # the model the strip's frames were named by

    def note(self, result: Result, threshold: float) -> None:
        """A classified frame for the strip. A switch to another model empties the strip
        (its frames are named in the old model's classes), and the old model's results
        still in flight are not kept."""
        ladder = self.camera.ladder
        if ladder[0] is not self._model:
            self._model = ladder[0]
            self.strip.clear()
        if any(result.classification.model == setup.name for setup in ladder):
            self.strip.note(result, threshold)

    def classes(self) -> list[str]:
        """The trained model's classes, else the dataset's class folders (maybe none)."""
        current = self.camera.current
        if current.trained:
            return list(current.classes)
        try:
            return [folder.name for folder in class_dirs(self.dataset)]
        except ConfigError:
            return []  # no dataset yet

    def save(self, number: int, label: str) -> Path:
        """Label a strip entry: the frame goes into the dataset with a capture's sidecar."""
        check_label(label)
        entry = self.strip.take(number)
        if entry is None:
            raise ConfigError(f"frame {number} has left the strip: pick another")
        save = self.camera.plan.save
        if save is None:
            raise ConfigError("this camera saves no frames")
        save(self.camera, entry.frame, label)
        return self.dataset / label

    def training_job(self) -> tuple[Path, Path, Any]:
        """(dataset, model to write, TrainSettings): the camera's view, from its model (or
        the base of a model camapp trained), written beside the dataset."""
        from camapp.training import TrainSettings

        current = self.camera.current
        base = current.base or str(current.path)
        plan = self.camera.plan
        settings = TrainSettings(base=str(base), crop=plan.crop, roi=plan.roi)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = self.dataset.resolve().parent / f"{self.camera.camera_id}-{stamp}.tflite"
        return self.dataset, out, settings


@dataclass(frozen=True)
class TrainingStatus:
    """What the page shows: idle, running (stage, done of total), done (the model, its
    accuracy and its report) or failed (why)."""

    state: str = "idle"
    camera: str | None = None
    stage: str | None = None
    done: int = 0
    total: int = 0
    model: str | None = None
    error: str | None = None
    accuracy: float | None = None  # the int8 model's on the validation images, else training
    accuracy_on: str | None = None  # "validation" or "training"
    report: str | None = None  # MODEL.report.md
    chart: str | None = None  # MODEL.report.png, when matplotlib is there

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trainer:
    """One training at a time for the whole process, on a thread of its own; `status` is
    replaced whole (read by the server's loop, written by the training thread)."""

    def __init__(self) -> None:
        self.status = TrainingStatus()
        self._lock = threading.Lock()

    def start(self, camera_id: str, labels: Labels) -> bool:
        """False if a training is already running."""
        dataset, out, settings = labels.training_job()
        with self._lock:
            if self.status.state == "running":
                return False
            self.status = TrainingStatus("running", camera_id, "start")
        thread = threading.Thread(
            target=self._train, args=(dataset, out, settings), name="web-train", daemon=True
        )
        thread.start()
        return True

    def _train(self, dataset: Path, out: Path, settings: Any) -> None:
        from camapp.training import train
        from camapp.training.embed import lower_priority

        lower_priority()
        try:
            report = train(dataset, out, settings, self._progress)
        except CamappError as exc:
            self._end("failed", error=str(exc)[:300])
        except Exception as exc:  # the camera goes on: the page says what went wrong
            log.exception("training failed")
            self._end("failed", error=f"training failed: {str(exc)[:200]}")
        else:
            log.info("live view: trained %s", out)
            validated = report["val"]["accuracy"] is not None
            accuracy = report["val" if validated else "train"]["accuracy"]
            on = "validation" if validated else "training"
            self._end("done", model=str(out), accuracy=accuracy, accuracy_on=on,
                      report=report["report"], chart=report["chart"])  # fmt: skip

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.status = replace(self.status, stage=stage, done=done, total=total)

    def _end(self, state: str, **what: Any) -> None:
        with self._lock:
            self.status = replace(self.status, state=state, **what)

    def report(self, camera_id: str, kind: str) -> Path | None:
        """The report ("report") or chart ("chart") of the camera's finished training."""
        status = self.status
        if status.state != "done" or status.camera != camera_id:
            return None
        path = status.report if kind == "report" else status.chart
        return Path(path) if path else None
