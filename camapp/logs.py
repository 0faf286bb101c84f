"""The `camapp` command's log: one format on stderr, and repeated warnings limited.

A warning or error that repeats fast (connections refused by the live view, an event loop's
accept error, any line an outsider can trigger at will) would grow the log, the journal or
the SD card without bound. `RepeatLimit` lets the first BURST lines of each kind (logger,
level and message template, whatever its arguments) through in each WINDOW_S, drops the rest
of that window, and has the next line of that kind say how many were dropped. Lines under
WARNING (progress, `--debug`) are never dropped.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST = 5
WINDOW_S = 60.0
KINDS = 256  # kinds of line remembered: memory stays bounded whatever is logged

Kind = tuple[str, int, str]


@dataclass(slots=True)
class _Seen:
    start: float  # when this kind's window began
    shown: int = 0
    dropped: int = 0


class RepeatLimit(logging.Filter):
    """A handler's filter: at most BURST lines of a kind per WINDOW_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._seen: OrderedDict[Kind, _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.pop(kind, None) or _Seen(now)
        self._seen[kind] = seen
        while len(self._seen) > KINDS:
            self._seen.popitem(last=False)
        if now - seen.start >= WINDOW_S:
            seen.start, seen.shown = now, 0
        if seen.shown >= BURST:
            seen.dropped += 1
            return False
        if seen.dropped:
            record.msg = f"{record.msg} (and {seen.dropped} more like this, not logged)"
            seen.dropped = 0
        seen.shown += 1
        return True


def configure(debug: bool) -> None:
    """What `camapp` logs, to stderr: INFO (DEBUG with --debug), repeats limited."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="camapp: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatLimit) for f in handler.filters):
            handler.addFilter(RepeatLimit())
