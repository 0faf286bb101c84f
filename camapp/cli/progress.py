"""A progress bar on stderr for the long commands, so stdout carries only their result."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


class Bar:
    """Called as `progress(what, done, total)`. On a terminal one line redrawn in place;
    otherwise (a log, a pipe, the journal) one plain line as each stage starts and ends."""

    def __init__(self, prefix: str, stream: TextIO | None = None, width: int = 24) -> None:
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._shown = 0
        self._stage: str | None = None

    def __call__(self, what: str, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        text = f"{self.prefix}: [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {what}"
        if not self.tty:
            if what == self._stage and done < total:
                return
            self._stage = what
            self.stream.write(text + "\n")
        else:
            columns = shutil.get_terminal_size().columns - 1
            text = text[:columns]
            self.stream.write("\r" + text.ljust(self._shown))
            self._shown = len(text)
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line, so what follows starts on its own."""
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0
