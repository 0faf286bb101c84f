"""A progress line on stderr for long commands (train, compare): rewritten in place on a
terminal, one line per stage otherwise (a journal or a pipe)."""

from __future__ import annotations

import sys


class ProgressBar:
    def __init__(self, width: int = 30) -> None:
        self._width = width
        self._stage: str | None = None
        self._tty = sys.stderr.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._tty:
            if stage != self._stage:
                print(f"camapp: {stage} ({total})", file=sys.stderr, flush=True)
            self._stage = stage
            return
        filled = self._width * done // max(total, 1)
        bar = "#" * filled + "." * (self._width - filled)
        end = "\n" if done >= total else ""
        print(f"\r{stage:<24} [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)
        self._stage = stage
