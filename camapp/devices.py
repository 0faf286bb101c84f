"""The devices a process holds open for its models: a Hailo network, the AI Camera's network.

A device is opened once per key and shared by everything that asks for it (every worker of
every camera using the model, and the AI Camera's source). `Devices` has one owner: the app,
which closes it when it stops; a command's models own theirs (loader.plan gives each set-up
one), closed when the last holder lets go or at exit. Nothing here is module-level state.

At the bottom of the layers with `errors`: it imports nothing of camapp, so the AI Camera's
source (capture) and the backends (inference) share it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Devices:
    """Open devices by key, each with what closes it."""

    def __init__(self) -> None:
        self._open: dict[Hashable, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        # Also when the owner never calls close(): a dropped owner, or the interpreter's exit.
        weakref.finalize(self, _close_all, self._closers)

    def get(
        self, key: Hashable, open_: Callable[[], T], close: Callable[[T], None] | None = None
    ) -> T:
        """The device under `key`, opened by `open_()` the first time (then closed by
        `close(device)`); an error opening it is raised to the caller, and nothing is kept."""
        with self._lock:
            if key not in self._open:
                device = open_()
                self._open[key] = device
                if close is not None:
                    self._closers.append(lambda: close(device))
            return self._open[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release every device, newest first, so the next process (or a restart) can open
        them; the owner may open again afterwards."""
        with self._lock:
            self._open.clear()
            _close_all(self._closers)


def _close_all(closers: list[Callable[[], None]]) -> None:
    while closers:
        with contextlib.suppress(Exception):  # closing must not fail: it runs on every exit
            closers.pop()()
