"""Command-line flags derived from the settings' declarations (config/schema.py).

A setting `mqtt.buffer_messages` is the flag `--mqtt-buffer-messages`; its help is the
setting's description with its default. A boolean that defaults to on gets `--no-NAME`
(`--no-realtime`), one that defaults to off gets `--NAME` (`--loop`). The mapping from flag to
setting is kept with each flag, so no naming convention ties the two.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from camapp.config.load import flag_name
from camapp.config.schema import AppSettings, unwrap


@dataclass(frozen=True)
class Flag:
    path: tuple[str, ...]  # ("mqtt", "port")
    field: FieldInfo

    @property
    def dest(self) -> str:
        return "setting:" + ".".join(self.path)

    @property
    def option(self) -> str:
        name = flag_name(self.path)
        return f"--no-{name[2:]}" if self.kind is bool and self.field.default is True else name

    @property
    def kind(self) -> type:
        """int, float, bool or str: what argparse converts the value to before validation."""
        kind = unwrap(self.field.annotation)
        return kind if kind in (int, float, bool) else str


def flags(model: type[BaseModel] = AppSettings, prefix: tuple[str, ...] = ()) -> Iterator[Flag]:
    """Every setting that has a flag, tables (mqtt, ha, picamera) after the top level."""
    tables = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            tables.append((nested, (*prefix, name)))
        elif extra.get("flag", True):  # type: ignore[union-attr]
            yield Flag((*prefix, name), field)
    for nested, path in tables:
        yield from flags(nested, path)


def add_flags(
    parser: argparse.ArgumentParser,
    only: set[str] | None = None,
    model: type[BaseModel] = AppSettings,
    skip: set[str] | frozenset[str] = frozenset(),
    helps: Mapping[str, str] | None = None,
) -> None:
    """Add the flags of every setting of `model` (or of the settings named in `only`, but
    those in `skip`) to `parser`; `helps` replaces the declared help of the settings it
    names (a command whose default differs: `detect`'s model)."""
    groups: dict[str, Any] = {}
    for flag in flags(model):
        key = ".".join(flag.path)
        if (only is not None and key not in only) or key in skip:
            continue
        table = flag.path[0] if len(flag.path) > 1 else ""
        if table not in groups:
            groups[table] = parser.add_argument_group(f"{table} settings") if table else parser
        _add(groups[table], flag, (helps or {}).get(key))


def _add(group: Any, flag: Flag, help: str | None = None) -> None:
    field = flag.field
    extra = field.json_schema_extra or {}
    if flag.kind is bool:
        on = field.default is not True
        verb = "" if on else "turn off: "
        group.add_argument(
            flag.option,
            dest=flag.dest,
            action="store_const",
            const=on,
            help=help or verb + (field.description or ""),
        )
        return
    group.add_argument(
        flag.option,
        dest=flag.dest,
        type=flag.kind,
        metavar=extra.get("metavar") or {int: "N", float: "X"}.get(flag.kind) or "VALUE",  # type: ignore[union-attr]
        help=help or _help(field),
    )


def joined(value: tuple[Any, ...]) -> str:
    """A tuple default as it is written: names "a,b", sizes "WxH"."""
    return ("," if all(isinstance(v, str) for v in value) else "x").join(str(v) for v in value)


def _help(field: FieldInfo) -> str:
    text = field.description or ""
    default = field.default
    if "(default" in text or default is None or field.default_factory is not None:
        return text
    if isinstance(default, tuple):
        default = joined(default)
    return f"{text} (default {default})"


def values(namespace: argparse.Namespace, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The flags the user gave, nested like a config file: {"mqtt": {"port": 1884}}; with
    `model`, only its own settings."""
    out: dict[str, Any] = {}
    for dest, value in vars(namespace).items():
        if not dest.startswith("setting:") or value is None:
            continue
        *tables, key = dest.removeprefix("setting:").split(".")
        if model is not None and (tables or [key])[0] not in model.model_fields:
            continue
        target = out
        for table in tables:
            target = target.setdefault(table, {})
        target[key] = value
    return out
