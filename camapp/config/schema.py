"""Every setting of camapp, declared once: type, bounds, default and one-line description.

The command-line flags and their help (config/flags.py), the config-file keys and their
validation (config/load.py), runtime `set` validation (runtime/controls.py) and the option
table in docs/configuration.md (config/docs.py) are all derived from these models.

`setting()` wraps pydantic's `Field`: `runtime=True` marks a setting the `set` topic may change
while camapp runs; `metavar` names the value in `--help`; `flag=False` keeps it off the
command line.
"""

from __future__ import annotations

import os
import re
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from camapp.errors import shorten

TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}")
SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")
MAX_DURATION_S = 366 * 86400  # longer cannot be meant; past threading.TIMEOUT_MAX it overflows
CROPS = ("center", "stretch")
LORES_FORMATS = ("YUV420", "RGB888")  # RGB888 lores needs a Pi 5; Pi 4 and older only do YUV
BIND = re.compile(r"(?:(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):)?([0-9]{1,5})")
# scrypt$N$r$p$salt$key, base64 (camapp/web/auth.py makes them: `camapp web password`).
SCRYPT_HASH = re.compile(
    r"scrypt\$([0-9]{1,8})\$([0-9]{1,2})\$([0-9]{1,2})\$[A-Za-z0-9+/=]{8,88}\$[A-Za-z0-9+/=]{16,88}"
)
MAX_SCRYPT_BYTES = 64 * 1024 * 1024  # memory a hash may make each login cost (128 * N * r)


def default_workers() -> int:
    """One single-threaded interpreter per core: the throughput-optimal split for MobileNet."""
    return max(1, min(os.cpu_count() or 1, 4))


def unwrap(annotation: Any) -> Any:
    """Optional and Annotated unwrapped: the type a setting's value has (flags and docs)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return unwrap(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is typing.Annotated:
        return unwrap(typing.get_args(annotation)[0])
    return annotation


def setting(
    default: Any = None,
    description: str = "",
    *,
    runtime: bool = False,
    flag: bool = True,
    metavar: str | None = None,
    **bounds: Any,
) -> Any:
    """A declared setting: pydantic's Field plus what the flags, docs and `set` derive from."""
    extra = {"runtime": runtime, "flag": flag, "metavar": metavar}
    if callable(default):
        return Field(
            default_factory=default, description=description, json_schema_extra=extra, **bounds
        )
    return Field(default, description=description, json_schema_extra=extra, **bounds)


def _check(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """fullmatch, never match: `$` would accept a trailing newline the broker then refuses."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _host(value: str) -> str:
    # The resolver encodes the name as IDNA; a name it cannot encode (an empty label as in
    # `broker..lan`) would fail every connection attempt with a traceback, not a config error.
    try:
        value.encode("idna")
    except UnicodeError:
        raise ValueError("must be a host name or IP address") from None
    return _nonempty(value)


def _file(value: str) -> str:
    if not os.path.isfile(value):
        raise ValueError(f"file not found: {shorten(value)}")
    return value


def _duration(value: float) -> float:
    if not 0 < value <= MAX_DURATION_S:
        raise ValueError(f"must be greater than 0 s and at most a year ({MAX_DURATION_S} s)")
    return value


def _size(value: Any) -> Any:
    """A size is written "WxH"; a tuple (from code) passes through to the type check."""
    if isinstance(value, str):
        size = SIZE.fullmatch(value)
        if size is None:
            raise ValueError('must be a size "WxH", e.g. "1280x960"')
        value = (int(size[1]), int(size[2]))
    elif not isinstance(value, tuple):
        raise ValueError('must be a size "WxH", e.g. "1280x960"')
    return value


def _version(value: Any) -> Any:
    """`protocol = 5` in TOML is a number; the version is still meant."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def parse_roi(value: Any) -> tuple[float, float, float, float]:
    """A region of interest: x1, y1, x2, y2 as fractions of the frame, 0 <= x1 < x2 <= 1 and
    the same for y; written "x1,y1,x2,y2" or as a list of four numbers."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        if isinstance(parts, bool) or len(parts) != 4:
            raise ValueError
        x1, y1, x2, y2 = (float(v) if isinstance(v, str) else v for v in parts)
    except (TypeError, ValueError):
        raise ValueError("must be four numbers x1,y1,x2,y2 (fractions of the frame)") from None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x1, y1, x2, y2)):
        raise ValueError("must be four numbers x1,y1,x2,y2 (fractions of the frame)")
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise ValueError("must satisfy 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
    return float(x1), float(y1), float(x2), float(y2)


def _names(value: Any) -> Any:
    """A list of names, or "a,b,c" on the command line."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value) if isinstance(value, list) else value


# Every zone is tested against every tracked object of every processed frame, and counted in
# every `state`: a camera's zones, and a zone's points, are bounded (a `set` may send them).
MAX_ZONES = 32
MAX_ZONE_POINTS = 100
MAX_ZONE_NAME = 64  # characters: a name is in every state and event


def zone_name(value: Any) -> str:
    """A zone's name, as counts, events and the live view show it. The one check of a zone's
    name, for config files here and for camapp.detect.zones.parse_zone."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if not value.isprintable():  # a name is shown in Home Assistant, logs and the page
        raise ValueError("must not hold control characters")
    if len(value) > MAX_ZONE_NAME:
        raise ValueError(f"must be at most {MAX_ZONE_NAME} characters")
    return value


def _table(value: Any, example: str = "person=people.tflite,car=car.tflite") -> Any:
    """A table of label -> value, or "a=x,b=y" on the command line (`example`: the setting's
    own, for the error)."""
    if not isinstance(value, str):
        return value
    pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
    if not all(len(pair) == 2 and pair[0].strip() for pair in pairs):
        raise ValueError(f'must be "label=value" pairs, e.g. "{example}"')
    return {key.strip(): text.strip() for key, text in pairs}


def _scores(value: Any) -> Any:
    """Per-label scores: numbers in a table; "person=0.6" on the command line."""
    value = _table(value, "person=0.6,car=0.4")  # not the classify setting's model files
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        try:
            return {key: float(text) for key, text in value.items()}
        except ValueError:
            raise ValueError('must be "label=score" pairs, e.g. "person=0.6,car=0.4"') from None
    return value


def _score_range(value: dict[str, float]) -> dict[str, float]:
    for label, score in value.items():
        if not 0.01 <= score <= 1:  # NaN fails too
            raise ValueError(f"{label!r:.40}: {score:g} is not within 0.01..1")
    return value


def _nonempty_values(value: dict[str, str]) -> dict[str, str]:
    for label, text in value.items():
        if not text.strip():
            raise ValueError(f"{label!r:.40}: must name a model")
    return value


def zone_points(value: Any) -> tuple[tuple[float, float], ...]:
    """A zone's polygon: at least 3 [x, y] points, each within [0, 1] (fractions of the frame,
    so it survives a change of resolution). The one check of a zone's points, for config files
    here and for camapp.detect.zones.parse_zone."""
    try:
        pairs = tuple(_pair(point) for point in value)
    # OverflowError: an integer past any float (JSON's and YAML's integers have no bound)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("points must be [x, y] pairs of numbers") from None
    if not 3 <= len(pairs) <= MAX_ZONE_POINTS:
        most = "at least 3" if len(pairs) < 3 else f"at most {MAX_ZONE_POINTS}"
        raise ValueError(f"needs {most} points, got {len(pairs)}")
    for i, (x, y) in enumerate(pairs, 1):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # NaN fails too
            raise ValueError(
                f"point {i} ({x:g}, {y:g}) is outside [0, 1] (points are fractions of the frame)"
            )
    if _on_one_line(pairs):  # a zone that could never hold anything
        raise ValueError("its points enclose no area (all on one line)")
    return pairs


def _on_one_line(points: tuple[tuple[float, float], ...]) -> bool:
    (x0, y0), others = points[0], [p for p in points if p != points[0]]
    if not others:
        return True
    dx, dy = others[0][0] - x0, others[0][1] - y0
    return all(abs(dx * (y - y0) - dy * (x - x0)) < 1e-12 for x, y in others)


def _pair(point: Any) -> tuple[float, float]:
    x, y = point
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
        raise ValueError("not a number")
    return float(x), float(y)


def unique_zones(names: list[str]) -> None:
    """Zone names are what counts and events name: each once; and at most MAX_ZONES."""
    if len(names) > MAX_ZONES:
        raise ValueError(f"at most {MAX_ZONES} zones, got {len(names)}")
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"zone {twice[0]!r:.40} is defined more than once")


def _zones(value: list[ZoneSettings]) -> list[ZoneSettings]:
    unique_zones([zone.name for zone in value])
    return value


def _some(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("must name at least one label")
    return value


def _even(value: tuple[int, int]) -> tuple[int, int]:
    if not all(n > 0 and n % 2 == 0 for n in value):
        raise ValueError("width and height must be even (YUV420) and greater than 0")
    return value


def _bind(value: str) -> str:
    """ "HOST:PORT", "[v6]:PORT" or "PORT" (on 127.0.0.1)."""
    bind = BIND.fullmatch(value)
    if bind is None or not 1 <= int(bind[2]) <= 65535:
        raise ValueError('must be "HOST:PORT" or "PORT" with a port from 1 to 65535')
    return value


def _scrypt_hash(value: str) -> str:
    """Checked here so that a login can never cost more than MAX_SCRYPT_BYTES."""
    parts = SCRYPT_HASH.fullmatch(value)
    if parts is None:
        raise ValueError("must be a hash printed by `camapp web password`")
    n, r, p = (int(parts[i]) for i in (1, 2, 3))
    if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= 4 or 128 * n * r > MAX_SCRYPT_BYTES:
        raise ValueError("scrypt parameters out of range (N a power of 2, 128*N*r <= 64 MiB)")
    return value


NonEmpty = Annotated[str, AfterValidator(_nonempty)]
TopicLevel = Annotated[str, _check(TOPIC_LEVEL, "1-64 letters, digits, '-' or '_'")]
Topic = Annotated[str, _check(TOPIC, "topic levels of letters, digits, '-' or '_'")]
ExistingFile = Annotated[str, AfterValidator(_file)]
Size = Annotated[tuple[int, int], BeforeValidator(_size), AfterValidator(_even)]
Roi = Annotated[tuple[float, float, float, float], BeforeValidator(parse_roi)]


def partial(info: ValidationInfo) -> bool:
    """Rules across settings wait for the merged settings: the file may give one half of a
    pair and the command line the other."""
    return bool(info.context and info.context.get("partial"))


class Settings(BaseModel):
    """Strict: a string is never taken for a number, nor a number for a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MqttSettings(Settings):
    host: Annotated[str, AfterValidator(_host)] = setting("localhost", "broker host")
    port: int = setting(1883, "broker port", ge=1, le=65535)
    base_topic: Topic = setting("camapp", "base topic of every camapp message")
    qos: int = setting(1, "QoS of published messages", ge=0, le=2)
    keepalive: int = setting(30, "seconds between keep-alive pings", ge=5, le=3600)
    client_id: TopicLevel | None = setting(
        None, "MQTT client id (default camapp-<camera_id> of the first camera)"
    )
    username: NonEmpty | None = setting(None, "broker user name")
    password_file: ExistingFile | None = setting(
        None, "file holding the broker password (else $CAMAPP_MQTT_PASSWORD)", metavar="FILE"
    )
    tls: bool = setting(False, "TLS with the system's CA certificates")
    tls_ca: ExistingFile | None = setting(None, "CA certificate(s) to verify the broker with")
    tls_cert: ExistingFile | None = setting(None, "client certificate (TLS)")
    tls_key: ExistingFile | None = setting(None, "client certificate's key (TLS)")
    tls_insecure: bool = setting(False, "TLS without verifying the broker (testing only)")
    buffer_messages: int = setting(
        10000, "messages kept for the broker while it is away", ge=1, le=10_000_000
    )
    buffer_bytes: int = setting(
        8 * 1024 * 1024, "bytes kept for the broker while it is away", ge=1024, le=2**31
    )
    protocol: Annotated[Literal["5", "3.1.1"], BeforeValidator(_version)] = setting(
        "5", "MQTT protocol version: 5, or 3.1.1 for old brokers", metavar="VERSION"
    )
    connect_timeout: float = setting(
        10.0,
        "seconds for TCP, TLS and the broker's answer before saying why",
        ge=1,
        le=300,
        metavar="S",
    )

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_insecure or self.tls_ca is not None or self.tls_cert is not None

    @model_validator(mode="after")
    def _key_needs_cert(self, info: ValidationInfo) -> MqttSettings:
        if partial(info):
            return self
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("mqtt.tls_key needs mqtt.tls_cert (the client certificate)")
        return self


class HaSettings(Settings):
    discovery: bool = setting(True, "announce the cameras to Home Assistant (MQTT discovery)")
    prefix: Topic = setting("homeassistant", "Home Assistant discovery prefix")


class HttpSettings(Settings):
    """The live view page (camapp/web/), served by camapp itself; off unless `bind` is set."""

    bind: Annotated[str, AfterValidator(_bind)] | None = setting(
        None,
        'serve the live view on "HOST:PORT" ("PORT": on 127.0.0.1); default off',
        metavar="[HOST:]PORT",
    )
    password_hash: Annotated[str, AfterValidator(_scrypt_hash)] | None = setting(
        None, "the page's password, hashed (`camapp web password` prints it)", flag=False
    )
    password_file: ExistingFile | None = setting(
        None, "file holding the page's password (else $CAMAPP_HTTP_PASSWORD)", metavar="FILE"
    )
    view_fps: float = setting(5.0, "live pictures per second per camera, at most", ge=0.2, le=30)
    view_width: int = setting(
        640, "live picture width, at most (wider frames are scaled down)", ge=64, le=4096
    )

    @model_validator(mode="after")
    def _one_password(self, info: ValidationInfo) -> HttpSettings:
        if partial(info):
            return self
        if self.password_hash is not None and self.password_file is not None:
            raise ValueError("http.password_hash and http.password_file: give one, not both")
        return self


class PiCameraSettings(Settings):
    # A frame at least every 2 s: a longer wait would trip the camera's 5 s capture timeout.
    fps: float = setting(15.0, "Pi camera frame rate", ge=0.5, le=120, metavar="FPS")
    main_size: Size = setting(
        (1280, 960), "main stream size, which picks the sensor mode and crop", metavar="WxH"
    )
    lores_size: Size | None = setting(
        None,
        "model-input stream size (default: the main's aspect, just covering the model; fitting "
        "in it for a letterboxing detector with no roi or classify)",
        metavar="WxH",
    )
    lores_format: Literal["YUV420", "RGB888"] = setting(
        "YUV420", "model-input stream format (RGB888 needs a Pi 5)", metavar="FORMAT"
    )

    @model_validator(mode="after")
    def _lores_within_main(self, info: ValidationInfo) -> PiCameraSettings:
        if partial(info):
            return self
        lores, main = self.lores_size, self.main_size
        if lores is not None and (lores[0] > main[0] or lores[1] > main[1]):
            raise ValueError(
                f"picamera.lores_size: lores {lores[0]}x{lores[1]} exceeds main {main[0]}x{main[1]}"
            )
        return self


class ZoneSettings(Settings):
    """A named polygon of a camera's frame; an object standing in it counts for it."""

    name: Annotated[str, BeforeValidator(zone_name)] = setting(
        ..., f"the zone's name (at most {MAX_ZONE_NAME} characters), in counts and events"
    )
    points: Annotated[tuple[tuple[float, float], ...], BeforeValidator(zone_points)] = setting(
        ..., "at least 3 [x, y] points, fractions of the frame"
    )


class CameraSettings(Settings):
    """What each camera may set for itself; at the top level, the default for every camera."""

    camera_id: TopicLevel = setting("cam0", "topic level naming this camera")
    source: NonEmpty | None = setting(
        None, "picamera[:N], imx500, usb:N, /dev/videoN, rtsp://..., or a video file"
    )
    model: NonEmpty | None = setting(
        None, "model file or known name (default: mobilenet_v2_int8)", metavar="MODEL"
    )
    labels: NonEmpty | None = setting(
        None, "labels file (default: the model's embedded labels)", metavar="FILE"
    )
    model_folders: Annotated[tuple[str, ...], BeforeValidator(_names)] = setting(
        (),
        "folders a `set` command's model file may come from, besides the models folder "
        "(known names are always allowed: docs/mqtt.md)",
        metavar="DIR1,DIR2",
    )
    model_max_mb: float = setting(
        128.0, "largest model file a `set` command may switch to", ge=1, le=2048, metavar="MB"
    )
    top_k: int = setting(5, "how many classes to report", ge=1, le=100)
    min_score: float = setting(
        0.5,
        "detectors: the least score of an object reported",
        ge=0.01,
        le=1,
        metavar="X",
    )
    min_area: float = setting(
        0.0,
        "detectors: the least area of an object's box, as a fraction of the frame",
        ge=0,
        le=1,
        metavar="X",
    )
    track: Annotated[tuple[str, ...], BeforeValidator(_names), AfterValidator(_some)] = setting(
        ("person", "car", "dog", "cat"),
        "detectors: the labels tracked, counted and published",
        metavar="L1,L2",
    )
    min_scores: Annotated[
        dict[str, float], BeforeValidator(_scores), AfterValidator(_score_range)
    ] = setting(
        dict,
        "detectors: the least score of a label's objects, instead of min_score (e.g. person=0.6)",
        metavar="L=X,...",
    )
    classify: Annotated[
        dict[str, str], BeforeValidator(_table), AfterValidator(_nonempty_values)
    ] = setting(
        dict,
        "detectors: a classifier per tracked label, whose crops it names as their sub_label "
        "(e.g. person=people.tflite)",
        metavar="L=MODEL,...",
    )
    classify_every: int = setting(
        5, "detectors: classify each tracked object's crop every N processed frames", ge=1, le=1000
    )
    zones: Annotated[list[ZoneSettings], AfterValidator(_zones)] = setting(
        list,
        f"detectors: named polygons (at most {MAX_ZONES}), [[cameras.zones]] tables with name "
        f"and points [[x, y], ...] (fractions of the frame, 3 to {MAX_ZONE_POINTS})",
        flag=False,
    )
    backend: NonEmpty | None = setting(
        None,
        "inference backend: litert, edgetpu, onnx, hailo or imx500 (default: the model's "
        "manifest entry, else by file: .onnx, .hef, .rpk)",
    )
    delegate: NonEmpty | None = setting(
        None, "'edgetpu' or the path of a TFLite delegate library", metavar="DELEGATE"
    )
    input_mean: float | None = setting(
        None,
        "input normalisation (pixel - mean) / std; default: the model's metadata, else 127.5",
        ge=0,
        le=255,
        metavar="X",
    )
    input_std: float | None = setting(
        None,
        "input normalisation (pixel - mean) / std; default: the model's metadata, else 127.5",
        ge=0.001,
        le=1000,
        metavar="X",
    )
    crop: Literal["center", "stretch"] = setting(
        "center", "how a frame (or its region) fits the model input; default: as trained"
    )
    roi: Roi | None = setting(
        None,
        "region of interest x1,y1,x2,y2 (fractions of the frame); default: as trained, else all",
        metavar="X1,Y1,X2,Y2",
    )
    realtime: bool = setting(True, "read a video file at its frame rate, not as fast as it decodes")
    drop: bool = setting(True, "drop stale frames of live sources (off: classify every frame)")
    loop: bool = setting(False, "replay a video file forever")
    stride: int = setting(1, "classify 1 frame in N", ge=1, le=1000, runtime=True)
    max_frames: int | None = setting(None, "stop after capturing N frames", ge=1, le=2**31)
    paused: bool = setting(False, "start with classification paused", runtime=True, flag=False)
    dataset: NonEmpty | None = setting(
        None,
        "folder where `capture` commands save frames (default: datasets/<camera_id>)",
        metavar="DIR",
    )
    capture_per_minute: int = setting(
        30, "`capture` commands a camera takes a minute; more are refused", ge=1, le=600
    )
    dataset_max_images: int = setting(
        5000, "images a dataset class may hold; no frame is saved past it", ge=1, le=10**6
    )
    dataset_max_mb: float = setting(
        2048.0, "MiB a dataset may hold; no frame is saved past it", ge=1, le=10**7, metavar="MB"
    )
    dataset_min_free_mb: float = setting(
        500.0, "MiB of free disk a saved frame always leaves", ge=0, le=10**9, metavar="MB"
    )
    cpu_budget: float | None = setting(
        None,
        "camapp's CPU as a percent of the whole machine (100 = every core)",
        ge=1,
        le=100,
        runtime=True,
        metavar="PCT",
    )
    power_budget: float | None = setting(
        None, "board power, measured or estimated", ge=0.5, le=100, runtime=True, metavar="W"
    )
    temp_limit: float | None = setting(
        None, "SoC temperature", ge=30, le=110, runtime=True, metavar="C"
    )
    motion_threshold: float | None = setting(
        None,
        "skip inference while the scene changes less than this (mean grey levels, 0-255)",
        ge=0.1,
        le=255,
        metavar="LEVELS",
    )
    motion_refresh: float = setting(
        10.0, "classify an unchanged scene at least every S seconds", ge=0.1, le=86400, metavar="S"
    )
    state_frames: int = setting(
        3, "consecutive agreeing classifications before the state changes", ge=1, le=1000
    )
    threshold: float = setting(
        0.5, "score a classification needs to count towards the state", ge=0, le=1, runtime=True
    )
    adapt: Literal["stride", "model", "auto"] = setting(
        "stride",
        "how budgets are kept: skip frames (stride), step down the model ladder (model), or both",
    )
    ladder: Annotated[tuple[str, ...], BeforeValidator(_names)] | None = setting(
        None,
        "cheaper models with the same classes (a detector camera's: detectors that know its"
        " tracked labels), in order (default: the manifest's ladder)",
        metavar="M1,M2",
    )
    source_timeout: float = setting(
        60.0,
        "seconds a live source may be down before the state says unknown",
        ge=1,
        le=86400,
        metavar="S",
    )
    area: NonEmpty | None = setting(None, "Home Assistant: the area to suggest for the camera")
    device_class: NonEmpty | None = setting(
        None, "Home Assistant: device class of a two-class model's binary sensor (e.g. occupancy)"
    )
    on_label: NonEmpty | None = setting(
        None, "Home Assistant: the class that turns that binary sensor on (default: the second)"
    )
    snapshot_interval: float = setting(
        60.0,
        "seconds between JPEG snapshots on `snapshot`, also sent when the state changes "
        "(0: no snapshots, nor a detector camera's `snapshot/<label>`)",
        ge=0,
        le=86400,
        metavar="S",
    )
    picamera: PiCameraSettings = setting(PiCameraSettings, "Pi camera settings")

    @model_validator(mode="after")
    def _classify_tracked(self, info: ValidationInfo) -> CameraSettings:
        """Only a tracked object has a crop followed long enough to be classified."""
        if partial(info):
            return self
        if untracked := [label for label in self.classify if label not in self.track]:
            raise ValueError(
                f"classify: {untracked[0]!r:.40} is not a tracked label "
                f"(track: {', '.join(self.track)})"
            )
        return self


class AppSettings(CameraSettings):
    """The whole file: camera defaults, the process's own settings, and `cameras`."""

    workers: int = setting(
        default_workers,
        "inference threads, one interpreter each (default: one per core, at most 4)",
        ge=1,
        le=64,
    )
    threads_per_worker: int = setting(1, "interpreter threads per worker", ge=1, le=64)
    duration: Annotated[float, AfterValidator(_duration)] | None = setting(
        None, "stop after S seconds", metavar="S"
    )
    print: bool = setting(False, "also print each classification on stdout")
    stats_interval: float = setting(
        5.0, "seconds between stats messages", ge=1, le=3600, metavar="S"
    )
    power_idle: float | None = setting(
        None, "power model: idle board power", ge=0.1, le=500, metavar="W"
    )
    power_full: float | None = setting(
        None, "power model: all cores busy", ge=0.1, le=500, metavar="W"
    )
    mqtt: MqttSettings = setting(MqttSettings, "MQTT broker and delivery")
    ha: HaSettings = setting(HaSettings, "Home Assistant discovery")
    http: HttpSettings = setting(HttpSettings, "the live view page")
    cameras: list[dict[str, Any]] | None = setting(
        None, "several cameras: each a table of camera settings", flag=False
    )

    @model_validator(mode="after")
    def _power_model(self, info: ValidationInfo) -> AppSettings:
        if partial(info):
            return self
        idle, full = self.power_idle, self.power_full
        if (idle is None) != (full is None):
            raise ValueError("power_idle and power_full must be given together")
        if idle is not None and full is not None and idle >= full:
            raise ValueError(f"power_idle ({idle:g} W) must be below power_full ({full:g} W)")
        return self


CAMERA_KEYS = frozenset(CameraSettings.model_fields)
RUNTIME_KEYS = tuple(
    name
    for name, field in CameraSettings.model_fields.items()
    if (field.json_schema_extra or {}).get("runtime")  # type: ignore[union-attr]
)
