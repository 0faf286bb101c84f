"""docs/configuration.md's option table, generated from the settings' declarations.

`python -m camapp.config.docs > docs/configuration.md` rewrites it; a test keeps the file
equal to what this prints, so the docs cannot drift from the code.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from camapp.config.flags import Flag, flags, joined
from camapp.config.schema import AppSettings, CameraSettings, unwrap
from camapp.config.training import DistillSettings, TrainSettings

HEADER = """# Configuration

Every setting of `camapp run`, generated from its declaration in `camapp/config/schema.py`
(`python -m camapp.config.docs`). Each is a config-file key (TOML or YAML; tables for `mqtt.*`,
`ha.*`, `http.*` and `picamera.*`) and, where the flag column has one, a command-line flag; the
command line overrides the file. Camera settings may also be set per camera in a `[[cameras]]`
entry, over the top-level value. Settings marked *runtime* can also be changed while camapp
runs, through the camera's `set` topic (docs/mqtt.md).

| key | flag | type | default | bounds | scope | description |
|---|---|---|---|---|---|---|
"""


TRAINING = """
## `camapp train`

The settings of `camapp train` and of distillation (`--teacher`, `--frames`), declared in
`camapp/config/training.py`: command-line flags only. The `head.*` settings (how the numpy
head is fitted) are for the Python API and the benchmarks.

| key | flag | type | default | bounds | used by | description |
|---|---|---|---|---|---|---|
"""


def table() -> str:
    by_path = {flag.path: flag for flag in flags()}
    rows = [_row(path, field, by_path.get(path)) for path, field in _fields(AppSettings)]
    return HEADER + "\n".join(rows) + "\n" + TRAINING + "\n".join(_training_rows()) + "\n"


def _training_rows() -> list[str]:
    """Training's settings, then distillation's own; each says which of the two uses it."""
    by_path = {f.path: f for model in (TrainSettings, DistillSettings) for f in flags(model)}
    train, distil = _fields(TrainSettings), _fields(DistillSettings)
    train_paths = {path for path, _ in train}
    distil_paths = {path for path, _ in distil}
    rows = []
    for path, field in train + [(p, f) for p, f in distil if p not in train_paths]:
        users = [name for name, paths in (("train", train_paths), ("distil", distil_paths))
                 if path in paths]  # fmt: skip
        rows.append(_row(path, field, by_path.get(path), ", ".join(users)))
    return rows


def _fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple, FieldInfo]]:
    out = []
    for name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            out += _fields(nested, (*prefix, name))
        else:
            out.append(((*prefix, name), field))
    return out


def _row(path: tuple[str, ...], field: FieldInfo, flag: Flag | None, scope: str = "") -> str:
    """A setting's line; `scope` for run's settings is derived: camera or process."""
    extra: dict[str, Any] = field.json_schema_extra or {}  # type: ignore[assignment]
    if not scope:
        scope = "camera" if path[0] in CameraSettings.model_fields else "process"
    if extra.get("runtime"):
        scope += ", runtime"
    cells = [
        f"`{'.'.join(path)}`",
        f"`{flag.option}`" if flag else "",
        _type(field),
        _default(field),
        _bounds(field),
        scope,
        field.description or "",
    ]
    return "| " + " | ".join(cells) + " |"


def _type(field: FieldInfo) -> str:
    kind = unwrap(field.annotation)
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(typing.get_args(kind))
    names = {bool: "bool", int: "int", float: "float", str: "string", dict: "table of labels"}
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if args[-1] is Ellipsis:
            return "list of names"
        return '"WxH"' if len(args) == 2 else "x1,y1,x2,y2"
    return names.get(typing.get_origin(kind) or kind, "list of tables")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed" if field.default_factory.__name__ == "default_workers" else ""
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return joined(value)
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _bounds(field: FieldInfo) -> str:
    """`1..64`; an exclusive end is marked (`>0..<0.5`)."""
    lo = hi = ""
    for rule in field.metadata:
        lo = f"{rule.ge}" if hasattr(rule, "ge") else f">{rule.gt}" if hasattr(rule, "gt") else lo
        hi = f"{rule.le}" if hasattr(rule, "le") else f"<{rule.lt}" if hasattr(rule, "lt") else hi
    return f"{lo}..{hi}" if lo or hi else ""


if __name__ == "__main__":
    print(table(), end="")
