"""The log's repeat limit: a line an outsider can repeat at will cannot grow the log."""

from __future__ import annotations

import logging

from camapp.logs import BURST, KINDS, WINDOW_S, RepeatLimit


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("camapp.web.door", level, __file__, 1, msg, args, None)


def test_a_repeated_warning_is_limited_and_then_counted() -> None:
    now = [0.0]
    limit = RepeatLimit(clock=lambda: now[0])
    shown = [limit.filter(record("refused %s", n)) for n in range(1000)]
    assert shown == [True] * BURST + [False] * (1000 - BURST)
    assert limit.filter(record("another line"))  # another kind has its own count
    assert all(limit.filter(record("progress %s", n, level=logging.INFO)) for n in range(100))
    now[0] += WINDOW_S
    later = record("refused %s", 1000)
    assert limit.filter(later)
    assert later.getMessage() == f"refused 1000 (and {1000 - BURST} more like this, not logged)"
    again = [limit.filter(record("refused %s", n)) for n in range(BURST)]
    assert again == [True] * (BURST - 1) + [False]  # a new window, counted afresh


def test_the_kinds_remembered_are_bounded() -> None:
    limit = RepeatLimit()
    for n in range(10 * KINDS):
        assert limit.filter(record(f"line {n}"))  # f-strings: every line its own kind
    assert len(limit._seen) == KINDS
