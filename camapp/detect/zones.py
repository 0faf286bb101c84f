"""Named zones, counts per label and per zone, and the debounce that makes counts a state.

A zone is a polygon in fractions of the frame (so it survives a change of resolution); an
object is in it when the bottom centre of its box, where it stands, is inside.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from camapp.config.schema import unique_zones, zone_name, zone_points
from camapp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    points: np.ndarray  # (k, 2) x, y fractions of the frame, k >= 3


def parse_zone(name: object, points: object) -> Zone:
    """A zone from config or a `set` command; a one-line ConfigError when it is not one (the
    name and points are checked by the settings' own `zone_name` and `zone_points`: one check
    for both)."""
    try:
        name = zone_name(name)
    except ValueError as exc:
        raise ConfigError(f"zone name {exc}, got {name!r:.40}") from None
    try:
        pairs = zone_points(points)
    except ValueError as exc:
        raise ConfigError(f"zone {name!r:.40}: {exc}") from None
    return Zone(name, np.array(pairs, np.float64))


def parse_zones(entries: Iterable[tuple[object, object]]) -> list[Zone]:
    """Zones from (name, points) pairs; names must be unique."""
    zones = [parse_zone(name, points) for name, points in entries]
    try:
        unique_zones([z.name for z in zones])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return zones


def as_settings(zones: Iterable[Zone]) -> list[dict[str, object]]:
    """Zones as settings and commands write them (`name`, `points` rounded to 1e-4): what
    `config` and the live view show."""
    return [{"name": z.name, "points": z.points.round(4).tolist()} for z in zones]


# How far inside the frame's bottom edge a box that reaches it stands: a point on a zone's
# border is outside it, and a zone drawn down to that edge must hold who is cut off by it.
EDGE = 1e-6


def footpoints(boxes: np.ndarray) -> np.ndarray:
    """The bottom centre of each box (n, 4: x1, y1, x2, y2): where an object stands, just
    inside the frame when the box reaches its bottom edge."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, np.minimum(boxes[:, 3], 1 - EDGE)], axis=1)


def inside(points: np.ndarray, zones: Sequence[Zone]) -> np.ndarray:
    """(n, z) booleans: is point i inside zone j (an even-odd ray cast, vectorised over the
    points and the polygon's edges)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    result = np.zeros((len(pts), len(zones)), bool)
    x, y = pts[:, :1], pts[:, 1:]
    for j, zone in enumerate(zones):
        x1, y1 = zone.points[:, 0], zone.points[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result[:, j] = np.count_nonzero(crosses & (x < at), axis=1) % 2 == 1
    return result


@dataclass(frozen=True, slots=True)
class Counts:
    """How many objects of each label, in all and per zone (every label and zone named,
    zeros too, so a count that falls to 0 is said)."""

    labels: dict[str, int]
    zones: dict[str, dict[str, int]]


def count(
    objects: Iterable[tuple[str, Iterable[str]]], labels: Sequence[str], zones: Sequence[str]
) -> Counts:
    """Counts of (label, zones it is in) pairs, for the given labels and zones only."""
    totals = dict.fromkeys(labels, 0)
    per_zone = {zone: dict.fromkeys(labels, 0) for zone in zones}
    for label, in_zones in objects:
        if label in totals:
            totals[label] += 1
            for zone in in_zones:
                if zone in per_zone:
                    per_zone[zone][label] += 1
    return Counts(totals, per_zone)


@dataclass(frozen=True, slots=True)
class CountState:
    """The debounced counts, and the frame at which the newest change among them began."""

    frame: int
    counts: Counts


@dataclass(slots=True)
class _Run:
    value: int
    start: int  # frame at which the count took this value
    length: int = 0


@dataclass(slots=True)
class CountDebouncer:
    """Counts that change only when they have held for `frames` processed frames, so one
    missed or spurious detection moves no state. Each count (per label, per zone and label)
    is debounced on its own."""

    frames: int
    state: CountState | None = None
    _runs: dict[tuple[str | None, str], _Run] = field(default_factory=dict)
    _stable: dict[tuple[str | None, str], int] = field(default_factory=dict)

    def update(self, frame: int, counts: Counts) -> CountState | None:
        """Feed one processed frame's counts; the new state when it changes, else None."""
        raw = _flatten(counts)
        changed = -math.inf
        for key in set(self._runs) - set(raw):  # a zone or label no longer counted
            del self._runs[key]
            if self._stable.pop(key, None) is not None:
                changed = frame
        for key, value in raw.items():
            run = self._runs.get(key)
            if run is None or run.value != value:
                run = self._runs[key] = _Run(value, frame)
            run.length += 1
            if run.length >= self.frames and self._stable.get(key) != value:
                self._stable[key] = value
                changed = max(changed, run.start)
        if changed == -math.inf or len(self._stable) < len(raw):
            return None
        self.state = CountState(int(changed), _unflatten(self._stable, counts))
        return self.state


def _flatten(counts: Counts) -> dict[tuple[str | None, str], int]:
    flat: dict[tuple[str | None, str], int] = {(None, k): v for k, v in counts.labels.items()}
    for zone, by_label in counts.zones.items():
        flat.update({(zone, k): v for k, v in by_label.items()})
    return flat


def _unflatten(flat: dict[tuple[str | None, str], int], shape: Counts) -> Counts:
    return Counts(
        {k: flat[(None, k)] for k in shape.labels},
        {z: {k: flat[(z, k)] for k in by_label} for z, by_label in shape.zones.items()},
    )
