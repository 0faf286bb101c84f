"""docs/configuration.md's option table, generated from the settings' declarations.

`python -m camapp.config.docs > docs/configuration.md` rewrites it; a test keeps the file
equal to what this prints, so the docs cannot drift from the code.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from camapp.config.flags import Flag, flags
from camapp.config.schema import AppSettings, CameraSettings, unwrap

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


def table() -> str:
    by_path = {flag.path: flag for flag in flags()}
    rows = [_row(path, field, by_path.get(path)) for path, field in _fields(AppSettings)]
    return HEADER + "\n".join(rows) + "\n"


def _fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple, FieldInfo]]:
    out = []
    for name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            out += _fields(nested, (*prefix, name))
        else:
            out.append(((*prefix, name), field))
    return out


def _row(path: tuple[str, ...], field: FieldInfo, flag: Flag | None) -> str:
    extra: dict[str, Any] = field.json_schema_extra or {}  # type: ignore[assignment]
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
    names = {bool: "bool", int: "int", float: "float", str: "string"}
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
        return "x".join(str(v) for v in value)
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _bounds(field: FieldInfo) -> str:
    lo = hi = None
    for rule in field.metadata:
        lo = getattr(rule, "ge", lo)
        hi = getattr(rule, "le", hi)
    return f"{lo}..{hi}" if lo is not None or hi is not None else ""


if __name__ == "__main__":
    print(table(), end="")
