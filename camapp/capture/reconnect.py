"""Reconnection: a live source that drops out is reopened with backoff, never given up on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from camapp.capture.base import Frame, Source
from camapp.errors import SourceError

log = logging.getLogger(__name__)


class Reconnecting:
    """Wraps a live source: when it drops out, reopen it, promptly at first, then backing off.

    A camera unplugged for a minute or an RTSP server that reboots costs frames, never the
    process. For the first `patience` seconds of an outage (a reboot, a blip) the attempts are
    at most `prompt_delay` apart, so frames flow again within about that (plus the stream's
    opening) of its return; a source down for longer is tried with exponential backoff up to
    `max_delay`, so one that stays down is not hammered. Waits end early when `stop` is set, so
    shutdown is never held up by a backoff.
    """

    def __init__(
        self,
        opener: Callable[[], Source],
        stop: threading.Event,
        first: Source | str,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        prompt_delay: float = 1.0,
        patience: float = 120.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        """`first` is the source as opened at start, or its name if it could not be: it is
        then down from the start, and tried at the first read. `on_change(up)` is called
        (on the capture thread) when the source drops out and when it is back, so that the
        camera can say so."""
        self._opener = opener
        self._stop = stop
        self._source: Source | None = None if isinstance(first, str) else first
        self._was_up = self._source is not None
        self._min, self._max = min_delay, max_delay
        self._prompt, self._patience = prompt_delay, patience
        self.name = first if isinstance(first, str) else first.name
        self.live, self.paced = True, True
        self.fps = self._source.fps if self._source else 0.0  # unknown yet: measured instead
        self._seq = 0
        self.reconnects = 0
        self._on_change = on_change

    def read(self) -> Frame | None:
        delay = self._min
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                if self._source is None:
                    self._source = self._opener()
                    self._opened()
                frame = self._source.read()
            except SourceError as exc:
                down_since = down_since or time.monotonic()
                self._drop(exc, delay)
                young = time.monotonic() - down_since < self._patience
                delay = min(delay * 2, self._max, self._prompt if young else self._max)
                continue
            if frame is None:
                return None
            # Keep one sequence across reconnects: frame numbers must never go back.
            frame.seq = self._seq
            self._seq += 1
            return frame
        return None

    def _opened(self) -> None:
        """Said once the source is open again; a source down from the start is up at last,
        which is no reconnection."""
        if self._was_up:
            self.reconnects += 1
            log.info("source %s is back", self.name)
        else:
            log.info("source %s is up", self.name)
            self._was_up = True
        self._tell(True)

    def _drop(self, exc: SourceError, delay: float) -> None:
        if self._source is not None:
            log.warning("%s; retrying with backoff", exc)
            self._source.close()
            self._source = None
            self._tell(False)
        self._stop.wait(delay)

    def _tell(self, up: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(up)
            except Exception:  # saying so must never stop the camera
                log.exception("source %s: reporting its state failed", self.name)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
