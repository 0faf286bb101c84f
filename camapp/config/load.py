"""Settings for `camapp run`: defaults < config file (TOML or YAML) < command line.

The file and the command line are each validated alone first, so that an error names where
the value came from (`c.toml: mqtt.qos: ...`, `command line: --mqtt-qos: ...`); the merged
settings are then validated whole, which checks the rules that span settings.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from camapp.config.schema import CAMERA_KEYS, AppSettings, CameraSettings, MqttSettings
from camapp.errors import ConfigError, echo, read_error
from camapp.files import read_text

PASSWORD_ENV = "CAMAPP_MQTT_PASSWORD"
MAX_VALUES = 10_000  # values a config may hold once YAML aliases are expanded
MAX_DEPTH = 32  # tables and lists nested in each other
MAX_CONFIG_BYTES = 1 << 20  # far above MAX_VALUES settings; bounds what is read and parsed
MAX_SECRET_BYTES = 64 << 10  # a password file: its first line is the password
TABLES = ("mqtt", "ha", "http", "picamera")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RunConfig:
    """Validated settings for one run: the process's, and one CameraSettings per camera."""

    app: AppSettings
    cameras: tuple[CameraSettings, ...]
    password: str | None  # from the password file or $CAMAPP_MQTT_PASSWORD; never shown

    @property
    def mqtt(self) -> MqttSettings:
        return self.app.mqtt


def read_file(path: Path) -> dict[str, Any]:
    """Parse a TOML (.toml) or YAML (.yaml/.yml) config file into a plain, bounded mapping."""
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise read_error("config file", path, exc) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = _parse(path, text)
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    _check_size(data, path)
    return data


def _parse(path: Path, text: str) -> Any:
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            why = echo(" ".join(str(exc).split()))[1:-1]
            raise ConfigError(f"config file {path}: invalid YAML: {why}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def _check_size(data: Any, path: Path) -> None:
    """Refuse a file whose values, counted as reached (YAML aliases re-count what they point
    to), exceed MAX_VALUES or MAX_DEPTH: a 400-byte alias bomb expands to gigabytes."""
    seen, stack = 0, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES or depth > MAX_DEPTH:
            raise ConfigError(
                f"config file {path}: more than {MAX_VALUES} values or {MAX_DEPTH} levels "
                "once YAML aliases are expanded"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def build(file_values: Mapping[str, Any], cli_values: Mapping[str, Any], origin: str) -> RunConfig:
    """Validate the file's values and the command line's, merge them, and check the whole.

    `cli_values` is nested like the file (`{"mqtt": {"port": 1884}}`); `origin` names the file.
    """
    validate_part(AppSettings, file_values, origin, _file_name)
    for index, entry in enumerate(file_values.get("cameras") or []):
        if not isinstance(entry, dict):
            raise ConfigError(f"{origin}: cameras[{index}]: must be a table of camera settings")
        validate_part(
            CameraSettings, entry, origin, lambda loc, i=index: _file_name((f"cameras[{i}]", *loc))
        )
    validate_part(AppSettings, cli_values, "command line", flag_name)
    merged = _merge(dict(file_values), cli_values)
    app = check(AppSettings, merged)
    cameras = _cameras(merged, cli_values, origin)
    return RunConfig(app, cameras, _password(app.mqtt))


def _cameras(
    merged: dict[str, Any], cli_values: Mapping[str, Any], origin: str
) -> tuple[CameraSettings, ...]:
    """One camera from the top level, or one per `cameras` entry over the top-level defaults
    (the command line still wins over both)."""
    defaults = {k: v for k, v in merged.items() if k in CAMERA_KEYS}
    entries = merged.get("cameras")
    if not entries:
        return (check(CameraSettings, defaults),)
    for key in ("source", "camera_id"):
        if key in defaults:
            where = f"--{key.replace('_', '-')}" if key in cli_values else f"{origin}: {key}"
            raise ConfigError(f"{where}: set it in each [[cameras]] entry, not for all of them")
    cli_camera = {k: v for k, v in cli_values.items() if k in CAMERA_KEYS}
    cameras = tuple(
        check(CameraSettings, _merge(_merge(dict(defaults), entry), cli_camera))
        for entry in entries
    )
    ids = [camera.camera_id for camera in cameras]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{origin}: cameras: camera_id must differ, got {', '.join(ids)}")
    return cameras


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`; tables (mqtt, ha, picamera) merge key by key."""
    out = dict(base)
    for key, value in over.items():
        if key in TABLES and isinstance(value, dict) and isinstance(out.get(key), dict):
            value = {**out[key], **value}
        out[key] = value
    return out


def validate_part(
    model: type[BaseModel],
    values: Mapping[str, Any],
    origin: str | None,
    name: Callable[[tuple[Any, ...]], str],
) -> None:
    """Check each value on its own (rules across settings wait for the merge)."""
    try:
        model.model_validate(values, context={"partial": True})
    except ValidationError as exc:
        raise ConfigError(explain(exc, model, origin, name)) from None


def check(
    model: type[M],
    values: Mapping[str, Any],
    origin: str | None = None,
    name: Callable[[tuple[Any, ...]], str] | None = None,
) -> M:
    """Validate whole settings (every rule, across settings too), or one ConfigError line
    naming the setting as `name` spells it (the config file's key by default)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(explain(exc, model, origin, name or _file_name)) from None


def _file_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def flag_name(loc: tuple[Any, ...]) -> str:
    """`--mqtt-buffer-messages`: a setting named as the command line spells it."""
    return "--" + "-".join(str(part) for part in loc).replace("_", "-")


_TYPES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be a list",
    "missing": "is required",
}
_BOUNDS = ("greater_than_equal", "less_than_equal", "greater_than", "less_than")


def explain(
    exc: ValidationError,
    model: type[BaseModel],
    origin: str | None,
    name: Callable[[tuple[Any, ...]], str],
) -> str:
    """The first problem as one line: origin, setting, why, and the value (shortened)."""
    error = exc.errors(include_url=False)[0]
    loc, kind = tuple(error["loc"]), error["type"]
    where = f"{origin}: " if origin else ""
    if kind == "extra_forbidden":
        return f"{where}unknown setting '{name(loc)}'"
    if kind in _TYPES:
        why = _TYPES[kind]
    elif kind in _BOUNDS:
        why = _bounds(model, loc)
    elif kind == "literal_error":
        why = "must be one of " + ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
    else:
        why = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a rule across settings: its message names them
        return f"{where}{why}"
    return f"{where}{name(loc)}: {why} (got {echo(error['input'])})"


def _bounds(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """`must be between 1 and 64`, from the field's own declaration."""
    field = None
    for part in loc:
        field = model.model_fields[part]
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            model = nested
    lo = hi = None
    for rule in field.metadata if field else ():
        lo = getattr(rule, "ge", getattr(rule, "gt", lo))
        hi = getattr(rule, "le", getattr(rule, "lt", hi))
    return f"must be between {_num(lo)} and {_num(hi)}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def read_secret(path: Path, key: str) -> str:
    """The first line of a password file; errors name the setting, never the secret."""
    try:
        lines = read_text(path, MAX_SECRET_BYTES).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{key}: cannot read {path}: {why}") from None
    if not lines or not lines[0]:
        raise ConfigError(f"{key}: {path} is empty")
    return lines[0]


def _password(mqtt: MqttSettings) -> str | None:
    """The MQTT password: the first line of `password_file`, else $CAMAPP_MQTT_PASSWORD.
    Errors never quote it."""
    if mqtt.password_file is not None:
        password = read_secret(Path(mqtt.password_file), "mqtt.password_file")
    else:
        password = os.environ.get(PASSWORD_ENV) or None
    if password and mqtt.username is None:
        where = "mqtt.password_file" if mqtt.password_file is not None else f"${PASSWORD_ENV}"
        raise ConfigError(f"{where} gives a password but mqtt.username is not set")
    return password
