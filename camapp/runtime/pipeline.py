"""The run: N cameras feeding M worker pools, started, waited for and stopped together.

Data flows one way: source -> capture thread -> the camera's bounded queue -> a pool's workers
-> the camera's reorder buffer -> its sinks. Threads own their state and meet only in the
queues (runtime/frames.py) and the reorder buffers (Camera.deliver). The caller's thread only
starts, waits and signals.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from camapp.capture import Source
from camapp.errors import CamappError
from camapp.inference.loader import Planned
from camapp.runtime.camera import Camera, CameraPlan, RunStats, Sink
from camapp.runtime.controls import Controls
from camapp.runtime.pool import Loader, WorkerPool


@dataclass
class RunReport:
    cameras: dict[str, RunStats]
    errors: list[CamappError] = field(default_factory=list)  # each keeps its exit code
    elapsed_s: float = 0.0


class Pipeline:
    def __init__(
        self, duration: float | None = None, stopping: threading.Event | None = None
    ) -> None:
        self.duration = duration
        self.pools: list[WorkerPool] = []
        self.cameras: list[Camera] = []
        # The caller may share its stop event (a reconnecting source waits on it too).
        self.stopping = stopping or threading.Event()
        self._abort = threading.Event()
        self._errors: queue.SimpleQueue[CamappError] = queue.SimpleQueue()

    def add_pool(self, workers: int, load: Loader) -> WorkerPool:
        pool = WorkerPool(workers, load, self._fail)
        self.pools.append(pool)
        return pool

    def add_camera(
        self,
        plan: CameraPlan,
        ladder: tuple[Planned, ...],
        source: Source,
        sinks: list[Sink],
        controls: Controls,
        pool: WorkerPool,
        drop: bool,
    ) -> Camera:
        """Frames are dropped (`drop`) only where they would go stale: live cameras and paced
        replays."""
        parts = (source, sinks, controls, pool.hub, drop, self.stopping, self._fail)
        camera = Camera(plan, ladder, *parts)
        self.cameras.append(camera)
        return camera

    def stop(self) -> None:
        """Finish gracefully: stop capture, classify what is queued, publish everything."""
        self.stopping.set()

    def abort(self) -> None:
        """Abandon the queued frames (they are counted, not lost silently) and stop waiting
        for a capture that hangs (a stalled stream): a user's second signal."""
        self.stopping.set()
        self._abort.set()
        for pool in self.pools:
            pool.close(discard=True)

    def run(self) -> RunReport:
        start = time.monotonic()
        captures = [
            threading.Thread(target=c.capture, name=f"capture-{c.camera_id}", daemon=True)
            for c in self.cameras
        ]
        # --duration ends the run like a signal would, even while a live source reconnects.
        timer = threading.Timer(self.duration or 0, self.stopping.set)
        timer.daemon = True
        for pool in self.pools:
            pool.start(self._abort)
        for thread in (*captures, *([timer] if self.duration else [])):
            thread.start()
        for thread in captures:
            self._wait(thread, unless=self._abort)
        timer.cancel()
        for pool in self.pools:
            pool.close(discard=self._abort.is_set())
            for worker in pool.threads:
                self._wait(worker)
        for camera in self.cameras:
            camera.flush()
            camera.stats.elapsed_s = time.monotonic() - start
        errors = []
        while not self._errors.empty():
            errors.append(self._errors.get())
        stats = {camera.camera_id: camera.stats for camera in self.cameras}
        return RunReport(stats, errors, time.monotonic() - start)

    @staticmethod
    def _wait(thread: threading.Thread, unless: threading.Event | None = None) -> None:
        # Short joins keep the main thread responsive to SIGINT/SIGTERM.
        while thread.is_alive() and not (unless and unless.is_set()):
            thread.join(0.2)

    def _fail(self, error: CamappError) -> None:
        self._errors.put(error)
        self.stopping.set()
