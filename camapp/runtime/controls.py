"""Settings that change while a camera runs: budgets, pause, stride, state threshold.

Which settings these are, and their bounds, come from their declaration (`runtime=True` in
config/schema.py). One `Controls` object per camera owns them. The `set` command handler
writes them through `update()`, which validates every key first and applies all or nothing;
the pipeline and the governor read them. Nothing else holds a copy that could go stale.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError, create_model

from camapp.config.load import explain
from camapp.config.schema import RUNTIME_KEYS, CameraSettings, Settings
from camapp.errors import echo

# A model of the runtime settings alone, built from their declarations in CameraSettings.
_Runtime = create_model(  # type: ignore[call-overload]
    "RuntimeSettings",
    __base__=Settings,
    **{key: (CameraSettings.model_fields[key].annotation, CameraSettings.model_fields[key])
       for key in RUNTIME_KEYS},
)  # fmt: skip
DEFAULTS: dict[str, Any] = _Runtime().model_dump()


class ControlError(ValueError):
    """A rejected update; the message names the key and why."""


class Controls:
    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._values = dict(DEFAULTS)
        self.update(initial)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate every key, then apply all of them; return the settings now in force."""
        self.check(changes)
        with self._lock:
            self._values.update(changes)
            return dict(self._values)

    def check(self, changes: Mapping[str, Any]) -> None:
        """Raise ControlError unless every key is a runtime setting with a valid value (a
        command that loads a model is checked so before it waits for its turn)."""
        unknown = [key for key in changes if key not in RUNTIME_KEYS]
        if unknown:
            raise ControlError(
                f"unknown setting {echo(unknown[0])} (known: {', '.join(RUNTIME_KEYS)})"
            )
        try:
            _Runtime.model_validate(dict(changes))
        except ValidationError as exc:
            raise ControlError(explain(exc, _Runtime, None, _name)) from None

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)


def _name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)
