"""Home Assistant MQTT discovery: each camera appears in Home Assistant as a device.

Each entity's config is published retained on
`<prefix>/<component>/camapp-<camera_id>/<object>/config` (see docs/mqtt.md), again after every
connection and whenever Home Assistant announces `online` on `<prefix>/status` (its birth
message: it has restarted and may have lost non-retained state). Births are coalesced: at
most one re-announcement is pending, REANNOUNCE_DELAY s after the first birth it answers, so
a flood of `online` (a loop, a misbehaving client) costs one announcement a second, not one
per entity per birth. An empty retained payload on the same topics removes the entities
(`camapp ha remove`).

What a camera offers depends on its model: the label as a `sensor` (an `enum` with its options
when the model has few classes), a two-class model also as a `binary_sensor` (available while
that model runs), a button per class of each model camapp trained that the camera has run, to
save training frames, and the controls of its `set` topic (pause, threshold, CPU budget,
model). A model switch adds entities and never deletes one: automations on a binary sensor or
a button outlive a switch to another model. Every config carries the configured QoS, so Home
Assistant subscribes as reliably as camapp publishes.

A detector camera (`Camera.counting`) offers what its retained `state` counts instead: a
count `sensor` and an occupancy `binary_sensor` per tracked label and per zone and label, an
`image` of the latest frame with its boxes and one per label of the best frame of its latest
object, and device triggers (`device_automation`) on its `triggers` topic: a label appeared
or left, entered or left a zone. Its entities are a function of its track and zones
(`Discovery.update` re-announces them when those change), so it also removes the configs
retained under its node that it no longer announces (`Discovery.note`): a zone gone, or the
entities of a classifier the camera used to be.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from camapp import __version__
from camapp.config.schema import HaSettings
from camapp.datasets import is_label
from camapp.publish.mqtt import MqttPublisher, default_client_id, dumps
from camapp.publish.objects import APPEARED, ENTERED, LEFT, trigger
from camapp.publish.topics import Channel, slug

# Seconds from Home Assistant's birth message to the re-announcement it triggers; the births
# that arrive meanwhile are answered by that one.
REANNOUNCE_DELAY = 1.0
ENUM_MAX = 50  # classes up to which the label is an enum sensor with its options
DIAGNOSTIC = {"entity_category": "diagnostic"}


@dataclass(frozen=True)
class Counting:
    """What a detector camera counts: its tracked labels, and its zones (as they are now)."""

    track: tuple[str, ...]
    zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Camera:
    """What a camera's entities are built from."""

    channel: Channel
    qos: int
    model: str
    labels: tuple[str, ...]  # one per class the model outputs
    buttons: tuple[str, ...] = ()  # classes of the trained models it ran: save a frame of each
    models: tuple[str, ...] = ()  # what the model select offers
    temperature: bool = True  # a temperature sensor exists on this board
    device_class: str | None = None  # of the binary_sensor of a two-class model
    on_label: str | None = None  # the class that turns it on (default: the second)
    area: str | None = None
    url: str | None = None  # the live view, when camapp serves one
    live: bool = True  # a camera or stream, which says on `source` whether it delivers
    snapshots: bool = True  # pictures on `snapshot` (snapshot_interval > 0)
    counting: Counting | None = None  # a detector camera's: counts, not a label


def node_id(camera_id: str) -> str:
    """The discovery node id: the camera's default MQTT client id."""
    return default_client_id(camera_id)


def config_topic(prefix: str, camera_id: str, component: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node_id(camera_id)}/{object_id}/config"


def configs_filter(prefix: str, camera_id: str) -> str:
    """The topic filter of every discovery config of a camera."""
    return config_topic(prefix, camera_id, "+", "+")


def discovery_configs(camera: Camera, prefix: str) -> dict[str, dict[str, Any]]:
    """Config topic -> config payload for every entity of this camera."""
    if camera.counting is not None:
        entities = _counting(camera, camera.counting)
    else:
        entities = [
            *_sensors(camera),
            *_binary_sensors(camera),
            *_controls(camera),
            _model_select(camera),
            *_buttons(camera),
        ]
    if camera.snapshots:
        entities.append(_image(camera, "snapshot", "Snapshot", "snapshot"))
    return {
        config_topic(prefix, camera.channel.camera_id, component, object_id): {
            **_common(camera, object_id, component),
            **config,
        }
        for component, object_id, config in entities
    }


def _image(camera: Camera, object_id: str, name: str, topic: str) -> Entity:
    config = {"name": name, "image_topic": camera.channel.topic(topic),
              "content_type": "image/jpeg"}  # fmt: skip
    return ("image", object_id, config)


def _common(camera: Camera, object_id: str, component: str) -> dict[str, Any]:
    camera_id = camera.channel.camera_id
    device = {
        "identifiers": [node_id(camera_id)],
        "name": f"camapp {camera_id}",
        "model": f"camapp smart camera ({camera.model})",
        "manufacturer": "camapp",
        "sw_version": __version__,
    }
    if camera.area:
        device["suggested_area"] = camera.area
    if camera.url:
        device["configuration_url"] = camera.url
    origin = {"name": "camapp", "sw_version": __version__}
    if component == "device_automation":  # a trigger has no unique id, state or availability
        return {"device": device, "origin": origin, "qos": camera.qos}
    return {
        "unique_id": f"{node_id(camera_id)}_{object_id}",
        "device": device,
        "origin": origin,
        "qos": camera.qos,
        **_availability(camera.channel),
    }


Entity = tuple[str, str, dict[str, Any]]  # component, object id, its own config


def _label(camera: Camera, state: str) -> dict[str, Any]:
    """The label sensor: an enum when the labels are few enough to list as options."""
    # A null label is `none` (nothing at the threshold), or `unknown` once the source has
    # been lost for a while (camapp then says why).
    # (A template rendering None is Home Assistant's `unknown`; a string 'unknown' is not:
    # a numeric sensor refuses it and an enum drops it as no option. Checked against Home
    # Assistant 2024.1, where a text sensor still shows the string "None": from 2024.10 on
    # every sensor reads it as unknown.)
    label = (
        "{% if value_json.label is not none %}{{ value_json.label }}"
        "{% elif value_json.get('reason') %}None{% else %}none{% endif %}"
    )
    label_config: dict[str, Any] = {
        "name": "Label",
        "state_topic": state,
        "icon": "mdi:cctv",
        "value_template": label,
    }
    if len(camera.labels) <= ENUM_MAX:
        label_config |= {"device_class": "enum", "options": [*camera.labels, "none"]}
    return label_config


def _sensors(camera: Camera) -> list[Entity]:
    state = camera.channel.topic("state")
    score = "{{ value_json.score }}"
    return [
        ("sensor", "label", _label(camera, state)),
        # A confidence of whichever label is in force: no long-term statistics of it.
        (
            "sensor",
            "score",
            # A display precision makes it numeric for Home Assistant, where None is
            # unknown in every release (checked against 2024.1), with no statistics kept.
            {
                "name": "Score",
                "state_topic": state,
                "value_template": score,
                "suggested_display_precision": 2,
                **DIAGNOSTIC,
            },
        ),
        *_stats(camera),
    ]


def _stats(camera: Camera) -> list[Entity]:
    """The diagnostic sensors of `stats`, which every camera publishes."""
    stats = camera.channel.topic("stats")
    entities: list[Entity] = [
        (
            "sensor",
            "classification_rate",
            _stat(
                "Classifications per second",
                stats,
                "fps_classified",
                unit_of_measurement="1/s",
                icon="mdi:speedometer",
            ),
        ),
        ("sensor", "cpu", _stat("CPU", stats, "cpu_pct", unit_of_measurement="%")),
        (
            "sensor",
            "power",
            _stat("Power", stats, "power_w", device_class="power", unit_of_measurement="W"),
        ),
    ]
    if camera.temperature:  # a board without a sensor would show `unknown` for ever
        entities.append(
            (
                "sensor",
                "temperature",
                _stat(
                    "Temperature",
                    stats,
                    "temp_c",
                    device_class="temperature",
                    unit_of_measurement="°C",
                ),
            )
        )
    return entities


def _stat(name: str, topic: str, key: str, **extra: Any) -> dict[str, Any]:
    template = f"{{{{ value_json.{key} }}}}"  # null renders None: unknown
    return {
        "name": name,
        "state_topic": topic,
        "value_template": template,
        "state_class": "measurement",
        **DIAGNOSTIC,
        **extra,
    }


def _source(camera: Camera) -> list[Entity]:
    if not camera.live:  # a video file never goes away: nothing to say on `source`
        return []
    problem = {"name": "Source problem", "state_topic": camera.channel.topic("source"),
               "payload_on": "offline", "payload_off": "online", "device_class": "problem",
               **DIAGNOSTIC}  # fmt: skip
    return [("binary_sensor", "source_problem", problem)]


def _binary_sensors(camera: Camera) -> list[Entity]:
    entities = _source(camera)
    if len(camera.labels) == 2:
        on = camera.on_label or camera.labels[1]
        # Unknown (None), not off, while the source is lost: nothing is known of the scene.
        template = (
            f"{{{{ None if value_json.get('reason') else "
            f"('ON' if value_json.label == {on!r} else 'OFF') }}}}"
        )
        config = {
            "name": on.capitalize(),
            "state_topic": camera.channel.topic("state"),
            "value_template": template,
            **_while_running(camera),
        }
        if camera.device_class:
            config["device_class"] = camera.device_class
        entities.append(("binary_sensor", "detected", config))
    return entities


def _controls(camera: Camera) -> list[Entity]:
    """The `set` topic's controls; their state is the retained `config`. A detector camera
    has no threshold (its `min_score` is a setting)."""
    command, config = camera.channel.topic("set"), camera.channel.topic("config")
    base = {"command_topic": command, "state_topic": config}
    budget = "{{ value_json.cpu_budget if value_json.cpu_budget is not none else 100 }}"
    entities: list[Entity] = [
        (
            "switch",
            "paused",
            {
                **base,
                "name": "Paused",
                "icon": "mdi:pause",
                "payload_on": '{"paused": true}',
                "payload_off": '{"paused": false}',
                "state_on": "ON",
                "state_off": "OFF",
                "value_template": "{{ 'ON' if value_json.paused else 'OFF' }}",
            },
        ),
        (
            "number",
            "threshold",
            {
                **base,
                "name": "Threshold",
                "min": 0,
                "max": 1,
                "step": 0.05,
                "command_template": '{"threshold": {{ value }}}',
                "value_template": "{{ value_json.threshold }}",
                "entity_category": "config",
            },
        ),
        (
            "number",
            "cpu_budget",
            {
                **base,
                "name": "CPU budget",
                "min": 1,
                "max": 100,
                "step": 1,
                "unit_of_measurement": "%",
                "command_template": '{"cpu_budget": {{ value }}}',
                "value_template": budget,
                "entity_category": "config",
            },
        ),
    ]
    return [e for e in entities if camera.counting is None or e[1] != "threshold"]


def _model_select(camera: Camera) -> Entity:
    """The camera's model, and the fetched ones it can switch to."""
    base = {"command_topic": camera.channel.topic("set"),
            "state_topic": camera.channel.topic("config")}  # fmt: skip
    options = list(dict.fromkeys((camera.model, *camera.models)))
    select = {
        **base,
        "name": "Model",
        "options": options,
        "command_template": '{"model": "{{ value }}"}',
        "value_template": "{{ value_json.model }}",
        "entity_category": "config",
    }
    return ("select", "model", select)


def _while_running(camera: Camera) -> dict[str, Any]:
    """Available while the camera runs this model (its `config` says which) and is online:
    after a switch to another model, the entity stays and is unavailable."""
    model = f"value_json.model == {camera.model!r}"
    running = {
        "topic": camera.channel.topic("config"),
        "value_template": f"{{{{ 'online' if {model} else 'offline' }}}}",
    }
    topics = [{"topic": topic} for topic in camera.channel.availability]
    return {
        "availability": [*topics, running],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def _counting(camera: Camera, counting: Counting) -> list[Entity]:
    """A detector camera's entities: its counts, pictures and triggers, its stats and
    controls, and its model select (the detectors it offers)."""
    places = _places(counting)
    entities = [_count(camera, label, zone) for label, zone in places]
    entities += [_occupied(camera, label, zone) for label, zone in places]
    entities += [*_stats(camera), *_source(camera), *_controls(camera), _model_select(camera)]
    entities += [
        _image(camera, f"snapshot_{slug(label)}", f"{_title(label)} snapshot",
               f"snapshot/{slug(label)}")
        for label in counting.track
        if camera.snapshots
    ]  # fmt: skip
    return entities + _triggers(camera, counting)


def _counted(label: str, zone: str | None) -> str:
    """A template expression for one count of the `state` (None while the source is lost,
    or for a zone the state does not count: Home Assistant's unknown)."""
    counts = (
        "(value_json.counts or {})"
        if zone is None
        else f"((value_json.zones or {{}}).get({json.dumps(zone, ensure_ascii=False)}) or {{}})"
    )
    return f"{counts}.get({json.dumps(label, ensure_ascii=False)})"


def _where(label: str, zone: str | None) -> tuple[str, str]:
    """(object id part, name) of a count: `person`, Person; `porch_person`, Porch person."""
    if zone is None:
        return slug(label), _title(label)
    return f"{slug(zone)}_{slug(label)}", f"{_title(zone)} {label}"


def _title(name: str) -> str:
    return name[:1].upper() + name[1:]


def _count(camera: Camera, label: str, zone: str | None) -> Entity:
    key, name = _where(label, zone)
    config = {
        "name": f"{name} count",
        "state_topic": camera.channel.topic("state"),
        "value_template": f"{{{{ {_counted(label, zone)} }}}}",
        "state_class": "measurement",
        "icon": "mdi:counter",
    }
    return ("sensor", f"count_{key}", config)


def _occupied(camera: Camera, label: str, zone: str | None) -> Entity:
    key, name = _where(label, zone)
    template = (
        f"{{% set n = {_counted(label, zone)} %}}"
        "{{ None if n is none else ('ON' if n > 0 else 'OFF') }}"
    )
    config = {
        "name": name,
        "state_topic": camera.channel.topic("state"),
        "value_template": template,
        "device_class": "occupancy",
    }
    return ("binary_sensor", f"occupied_{key}", config)


def _places(counting: Counting) -> list[tuple[str, str | None]]:
    """Where a tracked label is counted: the whole frame (None), then each zone."""
    whole = [(label, None) for label in counting.track]
    return whole + [(label, zone) for zone in counting.zones for label in counting.track]


def _triggers(camera: Camera, counting: Counting) -> list[Entity]:
    """Device triggers, each matching one `triggers` payload; Home Assistant shows one as
    `subtype type`: "person appeared", "person entered porch"."""
    made = [
        (label, kind, zone)
        for label, zone in _places(counting)
        for kind in ((APPEARED, LEFT) if zone is None else (ENTERED, LEFT))
    ]
    topic = camera.channel.topic("triggers")
    entities: list[Entity] = []
    for label, kind, zone in made:
        key = f"{slug(label)}_{kind}" if zone is None else f"{slug(label)}_{kind}_{slug(zone)}"
        config = {
            "automation_type": "trigger",
            "topic": topic,
            "type": kind if zone is None else f"{kind} {zone}",
            "subtype": label,
            "payload": trigger(label, kind, zone),
        }
        entities.append(("device_automation", f"trigger_{key}", config))
    return entities


def _buttons(camera: Camera) -> list[Entity]:
    """Save a training frame of each class of the models camapp trained that the camera ran,
    whose classes are the user's own."""

    command = camera.channel.topic("set")
    return [
        (
            "button",
            f"capture_{slug(label)}",
            {
                "name": f"Capture {label}",
                "command_topic": command,
                "payload_press": dumps({"capture": label}),
                "icon": "mdi:camera-plus",
                "entity_category": "config",
            },
        )
        for label in camera.buttons
        if is_label(label)  # not a distilled model's "(other)": no folder can hold it
    ]


def _availability(channel: Channel) -> dict[str, Any]:
    """One camera: its own topic. Several: the process's too (it carries the last will), and
    the entity is available only while both say `online`."""
    if len(channel.availability) == 1:
        return {
            "availability_topic": channel.availability[0],
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    return {
        "availability": [{"topic": topic} for topic in channel.availability],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


class Discovery:
    """Announces this camera's entities: register `announce` with the publisher's
    `on_connected`, `on_status` for `<prefix>/status` (Home Assistant's birth message), and
    for a detector camera `note` to watch `filter`."""

    def __init__(self, camera: Camera, settings: HaSettings) -> None:
        self._publisher = camera.channel.publisher
        self._prefix = settings.prefix
        self.status_topic = f"{settings.prefix}/status"
        self.filter = configs_filter(settings.prefix, camera.channel.camera_id)
        self._prune = camera.counting is not None  # what it announces is all it has
        self._configs = self._render(camera)
        self._lock = threading.Lock()
        self._pending = False  # a re-announcement is scheduled

    def _render(self, camera: Camera) -> dict[str, str]:
        return {t: dumps(c) for t, c in discovery_configs(camera, self._prefix).items()}

    def announce(self) -> None:
        with self._lock:
            configs = dict(self._configs)
        for topic, payload in configs.items():
            self._publisher.publish(topic, payload, retain=True)

    def update(self, camera: Camera) -> None:
        """The camera now runs another model (a `set` command), or counts in other zones:
        its entities follow. A classifier camera's entities the new model lacks stay (a
        binary sensor, unavailable until its model runs again; capture buttons, which still
        save frames of their class); a detector camera's that it no longer counts go."""
        configs = self._render(camera)
        with self._lock:
            gone = set(self._configs) - set(configs) if self._prune else set()
            self._configs = configs if self._prune else self._configs | configs
        for topic in sorted(gone):
            self._publisher.publish(topic, b"", retain=True)
        self.announce()

    def note(self, topic: str, payload: bytes, retained: bool) -> None:
        """A detector camera watches `filter`: a config retained there that it does not
        announce (a zone gone since the last run, a classifier's entities) is removed."""
        if not (self._prune and retained and payload):
            return
        with self._lock:
            stale = topic not in self._configs
        if stale:
            self._publisher.publish(topic, b"", retain=True)

    def on_status(self, payload: bytes) -> None:
        """On the network thread: schedule one re-announcement, unless one is pending."""
        if payload.strip() != b"online":
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        timer = threading.Timer(REANNOUNCE_DELAY, self._reannounce)
        timer.daemon = True  # a stop does not wait for it
        timer.start()

    def _reannounce(self) -> None:
        with self._lock:
            self._pending = False
        self.announce()


class Retained:
    """What the broker retains under a camera's discovery configs (`ha remove`): subscribe
    `note` to `configs_filter`, and register `ask` with `on_connected`. `ask` publishes an
    empty config on the select's topic, not retained (Home Assistant deletes that entity
    anyway): it comes back after every retained config the subscription delivers, so once it
    is back, `topics` is complete."""

    def __init__(self, publisher: MqttPublisher, prefix: str, camera_id: str) -> None:
        self._publisher = publisher
        self.marker = config_topic(prefix, camera_id, "select", "model")
        self.topics: set[str] = set()
        self.connected = False  # `ask` was called: the broker answered
        self.complete = threading.Event()

    def ask(self) -> None:
        self.connected = True
        self._publisher.publish(self.marker, b"")

    def note(self, topic: str, payload: bytes, retained: bool) -> None:
        if retained:
            self.topics.add(topic)
        elif topic == self.marker and not payload:
            self.complete.set()

    def remove(self) -> None:
        """Queue the empty retained payloads that delete every config found."""
        for topic in sorted(self.topics):
            self._publisher.publish(topic, b"", retain=True)
