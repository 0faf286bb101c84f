"""A progress bar on stderr for the long commands, so stdout carries only their result."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

LOG_EVERY_S = 10.0  # without a terminal: one line this often while a stage runs


class Bar:
    """Called as `progress(what, done, total)`. On a terminal one line redrawn in place;
    otherwise (a log, a pipe, the journal) one plain line as each stage starts and ends, one
    every LOG_EVERY_S seconds between, and the last state on close if it was not shown (a
    stage that stops short, as a clip that ends before the count)."""

    def __init__(
        self,
        prefix: str,
        stream: TextIO | None = None,
        width: int = 24,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.clock = clock
        self._shown = 0
        self._stage: str | None = None
        self._logged = 0.0  # when the last plain line was written
        self._unshown: str | None = None  # the latest plain line, while not written

    def __call__(self, what: str, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        text = f"{self.prefix}: [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {what}"
        if not self.tty:
            now = self.clock()
            if what == self._stage and done < total and now - self._logged < LOG_EVERY_S:
                self._unshown = text
                return
            self._stage, self._logged, self._unshown = what, now, None
            self.stream.write(text + "\n")
        else:
            columns = shutil.get_terminal_size().columns - 1
            text = text[:columns]
            self.stream.write("\r" + text.ljust(self._shown))
            self._shown = len(text)
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line, so what follows starts on its own; in a log, say where the
        last stage got to if that line is not there yet."""
        if self.tty and self._shown:
            self.stream.write("\n")
            self._shown = 0
        elif self._unshown is not None:
            self.stream.write(self._unshown + "\n")
            self._unshown = None
        self.stream.flush()
