"""Settings for `camapp run`: defaults < config file (TOML or YAML) < command line.

Every key is validated here, once, so the rest of camapp can trust its settings; a bad
value is reported with its key and where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camapp.capture.picamera import LORES_FORMATS, PiCameraSettings, check_lores_size
from camapp.errors import ConfigError
from camapp.inference.preprocess import CROPS
from camapp.publish.ha import HaSettings
from camapp.publish.mqtt import MqttSettings
from camapp.runtime import controls

PASSWORD_ENV = "CAMAPP_MQTT_PASSWORD"

TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOPIC = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
SIZE = re.compile(r"([0-9]+)x([0-9]+)")


def default_workers() -> int:
    """One single-threaded interpreter per core: the throughput-optimal split for MobileNet."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class Config:
    source: str | None = None
    camera_id: str = "cam0"
    model: str | None = None  # a manifest name or a path; None = the default model
    labels: str | None = None
    top_k: int = 5
    workers: int = field(default_factory=default_workers)
    threads_per_worker: int = 1
    delegate: str | None = None
    crop: str = "center"
    realtime: bool = True
    drop: bool = True
    loop: bool = False
    stride: int = 1
    max_frames: int | None = None
    duration: float | None = None
    print: bool = False
    # Budgets (seeded into Controls, changeable at runtime) and the governor's settings.
    cpu_budget: float | None = None  # percent of the whole machine, 100 = every core
    power_budget: float | None = None  # W
    temp_limit: float | None = None  # °C
    motion_threshold: float | None = None  # mean grey-level difference; None: no motion gate
    motion_refresh: float = 10.0  # s between forced classifications of an unchanged scene
    stats_interval: float = 5.0  # s between `stats` messages
    power_idle: float | None = None  # W, linear power model; None: the board's default
    power_full: float | None = None  # W, all cores busy
    state_frames: int = 3  # consecutive agreeing classifications before the state changes
    threshold: float = controls.DEFAULTS["threshold"]  # initial value; changeable at runtime
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    ha: HaSettings = field(default_factory=HaSettings)
    picamera: PiCameraSettings = field(default_factory=PiCameraSettings)


Check = Callable[[Any], str | None]


def _int(lo: int, hi: int) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _duration(v: float) -> str | None:
    # Longer than a year cannot be meant (run without a duration); far longer, past
    # threading.TIMEOUT_MAX, the timer would overflow.
    ok = 0 < v <= 366 * 86400
    return None if ok else "must be greater than 0 s and at most a year (31622400 s)"


def _match(pattern: re.Pattern[str], what: str) -> Check:
    return lambda v: None if pattern.match(v) else f"must be {what}"


def _one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _range(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"


def _host(v: str) -> str | None:
    # The resolver encodes the name as IDNA; a name it cannot encode (an empty label as in
    # `broker..lan`, a label over 63 characters) would kill paho's network thread.
    try:
        v.encode("idna")
    except UnicodeError:
        return "must be a host name or IP address"
    return _nonempty(v)


def _file(v: str) -> str | None:
    return None if Path(v).is_file() else f"file not found: {v}"


def _even_size(v: tuple[int, int]) -> str | None:
    ok = all(n > 0 and n % 2 == 0 for n in v)
    return None if ok else "width and height must be even (YUV420) and greater than 0"


# key -> (type, check); the type of every Config / MqttSettings field, in one place. A tuple
# is a size, written "WxH".
KEYS: dict[str, tuple[type, Check | None]] = {
    "source": (str, _nonempty),
    "camera_id": (str, _match(TOPIC_LEVEL, "1-64 letters, digits, '-' or '_'")),
    "model": (str, _nonempty),
    "labels": (str, _nonempty),
    "top_k": (int, _int(1, 100)),
    "workers": (int, _int(1, 64)),
    "threads_per_worker": (int, _int(1, 64)),
    "delegate": (str, _nonempty),
    "crop": (str, _one_of(*CROPS)),
    "realtime": (bool, None),
    "drop": (bool, None),
    "loop": (bool, None),
    "stride": (int, controls.CHECKS["stride"]),
    "max_frames": (int, _int(1, 2**31)),
    "duration": (float, _duration),
    "print": (bool, None),
    "cpu_budget": (float, controls.CHECKS["cpu_budget"]),
    "power_budget": (float, controls.CHECKS["power_budget"]),
    "temp_limit": (float, controls.CHECKS["temp_limit"]),
    "motion_threshold": (float, _range(0.1, 255)),
    "motion_refresh": (float, _range(0.1, 86400)),
    "stats_interval": (float, _range(1, 3600)),
    "power_idle": (float, _range(0.1, 500)),
    "power_full": (float, _range(0.1, 500)),
    "state_frames": (int, _int(1, 1000)),
    "threshold": (float, controls.CHECKS["threshold"]),
}
MQTT_KEYS: dict[str, tuple[type, Check | None]] = {
    "host": (str, _host),
    "port": (int, _int(1, 65535)),
    "base_topic": (str, _match(TOPIC, "topic levels of letters, digits, '-' or '_'")),
    "qos": (int, _int(0, 2)),
    "keepalive": (int, _int(5, 3600)),
    "client_id": (str, _match(TOPIC_LEVEL, "1-64 letters, digits, '-' or '_'")),
    "username": (str, _nonempty),
    "password_file": (str, _file),
    "tls": (bool, None),
    "tls_ca": (str, _file),
    "tls_cert": (str, _file),
    "tls_key": (str, _file),
    "tls_insecure": (bool, None),
    "buffer_messages": (int, _int(1, 10_000_000)),
    "buffer_bytes": (int, _int(1024, 2**31)),
}
HA_KEYS: dict[str, tuple[type, Check | None]] = {
    "discovery": (bool, None),
    "prefix": (str, _match(TOPIC, "topic levels of letters, digits, '-' or '_'")),
}
PICAMERA_KEYS: dict[str, tuple[type, Check | None]] = {
    # A frame at least every 2 s: a longer wait would trip the camera's 5 s capture timeout.
    "fps": (float, _range(0.5, 120)),
    "main_size": (tuple, _even_size),
    "lores_size": (tuple, _even_size),
    "lores_format": (str, _one_of(*LORES_FORMATS)),
}
# Tables in the file, and the command-line prefix of their keys (--mqtt-port: mqtt.port).
TABLES = {"mqtt": MQTT_KEYS, "ha": HA_KEYS, "picamera": PICAMERA_KEYS}


def read_file(path: Path) -> dict[str, Any]:
    """Parse a TOML (.toml) or YAML (.yaml/.yml) config file into a plain mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: invalid YAML: {_one_line(exc)}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    return data


def build(file_values: Mapping[str, Any], cli_values: Mapping[str, Any], origin: str) -> Config:
    """Validate the file's values, apply the command line's on top, return the Config."""
    top = _validate(file_values, KEYS, origin, prefix="", nested=set(TABLES))
    cli_top = {k: v for k, v in cli_values.items() if k in KEYS and v is not None}
    top |= _validate(cli_top, KEYS, "command line", prefix="--")
    tables: dict[str, dict[str, Any]] = {}
    for name, keys in TABLES.items():
        in_file = file_values.get(name, {})
        if not isinstance(in_file, dict):
            raise ConfigError(f"{origin}: {name}: must be a table")
        tables[name] = _validate(in_file, keys, origin, prefix=f"{name}.")
        flag = f"{name}_"
        cli = {k[len(flag) :]: v for k, v in cli_values.items() if k.startswith(flag)}
        cli = {k: v for k, v in cli.items() if v is not None}
        tables[name] |= _validate(cli, keys, "command line", prefix=f"--{name}-")
    if ("power_idle" in top) != ("power_full" in top):
        raise ConfigError("power_idle and power_full must be given together")
    if "power_idle" in top and top["power_idle"] >= top["power_full"]:
        raise ConfigError(
            f"power_idle ({top['power_idle']:g} W) must be below "
            f"power_full ({top['power_full']:g} W)"
        )
    mqtt = tables["mqtt"]
    if "tls_key" in mqtt and "tls_cert" not in mqtt:
        raise ConfigError("mqtt.tls_key needs mqtt.tls_cert (the client certificate)")
    mqtt["password"] = _password(mqtt)
    picamera = PiCameraSettings(**tables["picamera"])
    if picamera.lores_size is not None:
        try:
            check_lores_size(picamera.lores_size, picamera.main_size)
        except ValueError as exc:
            raise ConfigError(f"picamera.lores_size: {exc}") from None
    return Config(
        **top, mqtt=MqttSettings(**mqtt), ha=HaSettings(**tables["ha"]), picamera=picamera
    )


def _password(mqtt: Mapping[str, Any]) -> str | None:
    """The MQTT password: the first line of `password_file`, else $CAMAPP_MQTT_PASSWORD.
    Errors never quote it."""
    if "password_file" in mqtt:
        path = Path(mqtt["password_file"])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"mqtt.password_file: cannot read {path}: {why}") from None
        password = lines[0] if lines else ""
        if not password:
            raise ConfigError(f"mqtt.password_file: {path} is empty")
    else:
        password = os.environ.get(PASSWORD_ENV) or None
    if password and "username" not in mqtt:
        where = "mqtt.password_file" if "password_file" in mqtt else f"${PASSWORD_ENV}"
        raise ConfigError(f"{where} gives a password but mqtt.username is not set")
    return password


def _validate(
    values: Mapping[str, Any],
    keys: dict[str, tuple[type, Check | None]],
    origin: str,
    prefix: str,
    nested: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in nested:
            continue
        # Named as the user wrote it: `mqtt.buffer_messages` in a file, a flag on the command line.
        name = f"{prefix}{key}".replace("_", "-") if prefix.startswith("--") else f"{prefix}{key}"
        if key not in keys:
            raise ConfigError(f"{origin}: unknown setting '{name}'")
        kind, check = keys[key]
        value = _coerce(value, kind)
        if value is None:
            raise ConfigError(
                f"{origin}: {name}: must be {_KIND_NAMES[kind]} (got {values[key]!r})"
            )
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{origin}: {name}: {problem} (got {values[key]!r})")
        out[key] = value
    return out


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    tuple: 'a size "WxH", e.g. "1280x960"',
}


def _coerce(value: Any, kind: type) -> Any:
    """The value as `kind`, or None; bools are never taken for numbers, sizes are "WxH"."""
    if isinstance(value, bool):
        return value if kind is bool else None
    if kind is float and isinstance(value, int | float):
        return float(value)
    if kind is tuple:
        size = SIZE.fullmatch(value) if isinstance(value, str) else None
        return (int(size[1]), int(size[2])) if size else None
    return value if isinstance(value, kind) else None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
