"""Bounded frame queues, one per camera, and the fair hand-out of their frames to a worker pool.

All queues of one pool share one lock, so a worker waits for a frame from any camera in one
place. Workers take frames round-robin across the cameras that have one: a replay that always
has a frame ready cannot starve a live camera, and two busy cameras get equal shares.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from camapp.capture.base import Frame

Owner = TypeVar("Owner")

# A blocking replay's queue holds up to this many bytes of frames, at least the frames it was
# made for and at most REPLAY_FRAMES: frames in memory (398x224, 267 KB: 15 of them) then wake
# the capture thread once per 8 frames taken, decoded 768x432 frames (1 MB) once per 2 as before.
REPLAY_BYTES = 4 << 20
REPLAY_FRAMES = 32


class FrameQueue(Generic[Owner]):
    """One camera's bounded queue; frames leave it with consecutive tickets, in arrival order.

    With `drop_oldest` (cameras, streams, paced replays) a put into a full queue evicts the
    stalest frame, so latency never grows; otherwise a put blocks, so a replay processes every
    frame, and the capture thread is woken again only once the queue is down to half: it
    refills in bursts, one wake-up per half a queue rather than per frame (on 2 busy cores a
    wake-up preempts a worker). Such a queue is sized at its first frame to hold REPLAY_BYTES
    of frames, so small frames wake it seldom. Tickets let the camera put results back in
    frame order.
    Frames thrown away by a forced stop or a failure are counted in `discarded`.
    """

    def __init__(self, hub: Hub[Owner], owner: Owner, maxsize: int, drop_oldest: bool) -> None:
        self.owner = owner
        self.hub = hub
        self._items: deque[Frame] = deque()
        self._max = maxsize
        self._drop = drop_oldest
        self._freed = threading.Condition(hub.lock)  # only this camera's capture thread waits
        self._ticket = 0
        self._blocked = False  # the capture thread waits for room: take() must wake it
        self._sized = drop_oldest  # a blocking queue's depth is set by its first frame
        self.closed = False
        self.dropped = 0
        self.discarded = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: Frame) -> None:
        if not self._sized:  # only the capture thread puts: no lock needed for this
            fits = REPLAY_BYTES // max(1, frame.image.nbytes)
            self._max = max(self._max, min(REPLAY_FRAMES, fits))
            self._sized = True
        with self._freed:
            if self._drop and len(self._items) >= self._max:
                self._items.popleft()
                self.dropped += 1
            while len(self._items) >= self._max and not self.closed:
                self._blocked = True
                self._freed.wait()
            self._blocked = False
            if self.closed:  # a forced stop or a failure closed the queue under us
                self.discarded += 1
                return
            self._items.append(frame)
            if self.hub.idle:  # a notify() is Python code and a futex call: only if someone waits
                self.hub.filled.notify()

    def take(self) -> tuple[int, Frame]:
        """The oldest frame and its ticket; called by the hub with the lock held."""
        frame = self._items.popleft()
        ticket = self._ticket
        self._ticket += 1
        if self._blocked and len(self._items) <= self._max // 2:
            self._freed.notify()
        return ticket, frame

    def close(self, discard: bool = False) -> None:
        """No more puts; workers drain what is queued, or it is discarded and counted."""
        with self._freed:
            self.closed = True
            if discard:
                self.discarded += len(self._items)
                self._items.clear()
            self._freed.notify_all()
            self.hub.wake_all()


@dataclass
class Hub(Generic[Owner]):
    """The meeting point of a pool's workers and its cameras' queues.

    Only workers 0..active-1 take frames; the governor parks the others on `parked`, apart, so
    that a put's single notify() always reaches a worker that may take the frame.
    """

    workers: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    queues: list[FrameQueue[Owner]] = field(default_factory=list)
    demand: dict[int, int | None] = field(default_factory=dict)  # per queue: workers it needs

    def __post_init__(self) -> None:
        self.filled = threading.Condition(self.lock)
        self.parked = threading.Condition(self.lock)
        self._active = self.workers
        self._next = 0  # round-robin position
        self.idle = 0  # workers waiting on `filled`: a put notifies only if there is one

    def queue(self, owner: Owner, maxsize: int, drop_oldest: bool) -> FrameQueue[Owner]:
        made = FrameQueue(self, owner, maxsize, drop_oldest)
        with self.lock:
            self.queues.append(made)
        return made

    def set_demand(self, queue: FrameQueue[Owner], workers: int | None) -> None:
        """How many workers a camera needs (None: all); the pool runs as many as they sum to."""
        with self.lock:
            self.demand[id(queue)] = workers
            wanted = [self.workers if w is None else w for w in self.demand.values()]
            self._active = min(self.workers, max(1, sum(wanted)))
            self.wake_all()

    def get(self, worker: int) -> tuple[FrameQueue[Owner], int, Frame] | None:
        """The next frame for `worker`, round-robin across cameras; None once every queue is
        closed and drained."""
        with self.lock:
            while True:
                if worker < self._active or self._all_closed():
                    ready = self._pick()
                    if ready is not None:
                        return ready
                    if self._all_closed():
                        return None
                if worker >= self._active:
                    self.parked.wait()
                else:
                    self.idle += 1
                    self.filled.wait()
                    self.idle -= 1

    def _pick(self) -> tuple[FrameQueue[Owner], int, Frame] | None:
        count = len(self.queues)
        for step in range(count):
            queue = self.queues[(self._next + step) % count]
            if queue._items:
                self._next = (self._next + step + 1) % count
                return (queue, *queue.take())
        return None

    def _all_closed(self) -> bool:
        return all(queue.closed for queue in self.queues)

    def wake_all(self) -> None:
        """Called with the lock held: re-check who may take frames and whether all is done."""
        self.filled.notify_all()
        self.parked.notify_all()
