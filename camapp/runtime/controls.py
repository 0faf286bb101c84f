"""Settings that change while camapp runs: budgets, pause, stride, state threshold.

One `Controls` object per run owns them. The MQTT command handler writes them through
`update()`, which validates every key first and applies all or nothing; the pipeline and
the governor read them. Nothing else holds a copy that could go stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], str | None]


def _number(lo: float, hi: float, nullable: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            return "must be a number" + (" or null" if nullable else "")
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"

    return check


def _integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be an integer"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


# key -> check; a budget of null means "no budget".
CHECKS: dict[str, Check] = {
    "cpu_budget": _number(1, 100, nullable=True),  # percent of the whole machine
    "power_budget": _number(0.5, 100, nullable=True),  # watts
    "temp_limit": _number(30, 110, nullable=True),  # degrees C
    "paused": _boolean,
    "stride": _integer(1, 1000),  # classify at most 1 frame in N (the governor may skip more)
    "threshold": _number(0, 1),  # score a label needs to count towards the debounced state
}

DEFAULTS: dict[str, Any] = {
    "cpu_budget": None,
    "power_budget": None,
    "temp_limit": None,
    "paused": False,
    "stride": 1,
    "threshold": 0.5,
}


class ControlError(ValueError):
    """A rejected update; the message names the key and why."""


class Controls:
    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._values = dict(DEFAULTS)
        self.update(initial)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate every key, then apply all of them; return the settings now in force."""
        for key, value in changes.items():
            if key not in CHECKS:
                raise ControlError(f"unknown setting '{key}' (known: {', '.join(CHECKS)})")
            problem = CHECKS[key](value)
            if problem:
                raise ControlError(f"{key}: {problem} (got {value!r})")
        with self._lock:
            self._values.update(changes)
            return dict(self._values)

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)
