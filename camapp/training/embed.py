"""Run a vector-output model (a cut base, or a whole classifier) over many images, in threads.

One interpreter per thread (invoke() releases the GIL, and so do image decoding and
resizing), as many threads as cores. Workers run at low priority so training never
starves a camera running on the same device, and only the output vectors are kept:
images stream through a short queue, so memory does not grow with the dataset.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camapp.capture.imagefile import UnreadableImage, read_image
from camapp.errors import CamappError, ConfigError, os_reason, shorten
from camapp.inference.backend import InputSpec
from camapp.inference.backends.litert import interpreter_api
from camapp.inference.preprocess import quantize_lut
from camapp.training.frames import Roi, prepare

Progress = Callable[[str, int, int], None]  # (stage, done, total), on the caller's thread
LOW_PRIORITY = 10  # nice increment for worker threads
_PROGRESS_EVERY_S = 0.2


@dataclass(frozen=True)
class Job:
    """One image to run: a file (decoded in the worker) or a frame already in memory;
    `seed` asks for one augmented variant of it (None: the image as it is)."""

    source: Path | np.ndarray
    seed: int | None = None


@dataclass(frozen=True)
class Extraction:
    raw: np.ndarray  # (n, dim) the model's output, as it computes it (int8/uint8)
    ok: np.ndarray  # (n,) False where the image could not be read
    refused: dict[int, str]  # job index: why its image could not be read
    seconds: float
    threads: int

    @property
    def rate(self) -> float:
        """Images per second, decoding and preprocessing included."""
        return len(self.raw) / self.seconds if self.seconds else 0.0


def default_threads() -> int:
    """The cores this process may run on: one interpreter thread each."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def lower_priority(increment: int = LOW_PRIORITY) -> None:
    """Lower the calling thread's priority, not the process's: on Linux every thread has
    its own nice value, set by setpriority(PRIO_PROCESS, native thread id). Saying so
    explicitly (rather than os.nice(), process-wide by POSIX's word) keeps the camera's
    own threads at full priority while training embeds."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        # Best effort: a container may forbid it, and training works all the same.
        with contextlib.suppress(OSError):
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + increment))


def _interpreter(model: bytes) -> Any:
    """A one-thread interpreter on model bytes, tensors allocated."""
    interpreter = interpreter_api()[0](model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


class _Runner:
    """One thread's interpreter and the way to feed it an RGB image."""

    def __init__(self, model: bytes, crop: str, roi: Roi | None) -> None:
        self.interp = _interpreter(model)
        inp = self.interp.get_input_details()[0]
        self.size, self.dtype = int(inp["shape"][1]), np.dtype(inp["dtype"])
        scale, zero = inp["quantization"]
        self.lut = (
            None
            if self.dtype == np.float32
            else quantize_lut(InputSpec(1, 1, self.dtype, scale, zero))
        )
        self.input, self.output = inp["index"], self.interp.get_output_details()[0]["index"]
        self.crop, self.roi = crop, roi

    def run(self, image: np.ndarray, seed: int | None) -> np.ndarray:
        """The output vector for one BGR image (augmented when `seed` is given)."""
        rng = None if seed is None else np.random.default_rng(seed)
        rgb = prepare(image, self.size, self.crop, self.roi, rng)
        if self.dtype == np.float32:
            data = rgb.astype(np.float32) / 127.5 - 1.0
        else:
            data = rgb if self.lut is None else self.lut[rgb]
        self.interp.set_tensor(self.input, data[None])
        self.interp.invoke()
        return self.interp.get_tensor(self.output).reshape(-1)


def output_size(model: bytes) -> tuple[int, np.dtype]:
    """Length and dtype of the model's (single) output vector."""
    out = _interpreter(model).get_output_details()[0]
    return int(np.prod(out["shape"])), np.dtype(out["dtype"])


def dequantize_output(model: bytes, raw: np.ndarray) -> np.ndarray:
    """The model's raw outputs as floats, by its output quantization."""
    scale, zero = _interpreter(model).get_output_details()[0]["quantization"]
    return (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)


class _Pool:
    """Worker threads sharing a bounded job queue; results land in preallocated rows."""

    def __init__(self, model: bytes, total: int, crop: str, roi: Roi | None, low: bool) -> None:
        dim, dtype = output_size(model)
        self.raw, self.ok = np.zeros((total, dim), dtype), np.zeros(total, bool)
        self.model, self.crop, self.roi, self.low = model, crop, roi, low
        self.done: queue.Queue[int] = queue.Queue()
        self.errors: list[str] = []
        self.refused: dict[int, str] = {}
        self.fed = 0

    def feed(self, jobs: Iterable[Job], todo: queue.Queue, threads: int) -> None:
        """Queue the jobs (blocking while the queue is full), then one stop per worker."""
        try:
            for index, job in zip(range(len(self.raw)), jobs, strict=False):
                todo.put((index, job))
                self.fed = index + 1
        except Exception as exc:  # a clip that fails mid-way: report it, stop the workers
            self.errors.append(f"reading images failed: {type(exc).__name__}: {exc}")
        for _ in range(threads):
            todo.put(None)

    def work(self, todo: queue.Queue) -> None:
        """A worker thread: its own interpreter, jobs until the stop. Any failure is kept for
        the main thread to raise, and the worker then only drains the queue, so neither the
        feeder nor the main thread ever waits for it in vain."""
        if self.low:
            lower_priority()
        try:
            runner: _Runner | None = _Runner(self.model, self.crop, self.roi)
        except (ValueError, RuntimeError) as exc:
            self.errors.append(f"cannot load model: {exc}")
            runner = None
        while (item := todo.get()) is not None:
            index, job = item
            if runner is not None and not self.errors:
                try:
                    self._one(runner, index, job)
                except Exception as exc:  # never a dead worker and a hang: a one-line error
                    self.errors.append(f"embedding failed: {type(exc).__name__}: {exc}")
            self.done.put(1)

    def _one(self, runner: _Runner, index: int, job: Job) -> None:
        """Decode (in this thread: cv2 releases the GIL), run, store one row; an image that
        is refused is skipped, with its reason kept."""
        try:
            image = read_image(job.source) if isinstance(job.source, Path) else job.source
        except UnreadableImage as exc:
            self.refused[index] = exc.reason
            return
        self.raw[index] = runner.run(image, job.seed)
        self.ok[index] = True


def extract(
    model: bytes,
    jobs: Iterable[Job],
    total: int,
    crop: str = "center",
    roi: Roi | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    low_priority: bool = True,
    stage: str = "embed",
) -> Extraction:
    """Run `model` on up to `total` jobs; unreadable images leave ok[i] False.

    `progress(stage, done, total)` is called on the calling thread a few times a second.
    """
    threads = max(1, threads or default_threads())
    pool = _Pool(model, total, crop, roi, low_priority)
    todo: queue.Queue = queue.Queue(maxsize=2 * threads)  # bounds the frames held in memory
    start = time.perf_counter()
    workers = [
        threading.Thread(target=pool.work, args=(todo,), daemon=True) for _ in range(threads)
    ]
    workers.append(threading.Thread(target=pool.feed, args=(jobs, todo, threads), daemon=True))
    for w in workers:
        w.start()
    finished, shown = 0, 0.0
    while any(w.is_alive() for w in workers) or not pool.done.empty():
        try:
            finished += pool.done.get(timeout=0.05)
        except queue.Empty:
            continue
        if progress and (time.perf_counter() - shown > _PROGRESS_EVERY_S or finished == total):
            progress(stage, finished, total)
            shown = time.perf_counter()
    if pool.errors:
        raise CamappError(" ".join(pool.errors[0].split())[:300])  # one line, as every error
    n = pool.fed
    return Extraction(pool.raw[:n], pool.ok[:n], pool.refused, time.perf_counter() - start, threads)


def bare_rate(model: bytes, seconds: float = 1.0) -> float:
    """Invokes per second of one bare interpreter on one thread, on a fixed input: the
    ceiling any pipeline around the model is measured against."""
    interp = _interpreter(model)
    interp.invoke()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        interp.invoke()
        count += 1
    return count / elapsed


def load_model_bytes(path: Path) -> bytes:
    """A whole model file, for interpreters built from memory (one per thread)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read model {shorten(path)}: {os_reason(exc)}") from None
