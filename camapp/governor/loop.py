"""The governor thread: once a period it reads the sensors once, and each camera's counters,
runs each camera's controller, and publishes each camera's `stats`.

One Governor serves every camera of the process. Power and temperature are the machine's,
so each camera's budgets are judged on the same readings; the process's CPU is shared out
among the cameras in proportion to the inference time each used in the period, so that a
camera's `cpu_budget` bounds the CPU its own frames cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from camapp.governor.controller import Budgets, Controller, Sample
from camapp.governor.sensors import CpuReading, Reading
from camapp.runtime.camera import SKIP_REASONS, Counters, Knobs
from camapp.runtime.controls import Controls

log = logging.getLogger(__name__)


class Governed(Protocol):
    """The part of a camera the governor reads and steers."""

    def counters(self) -> Counters: ...

    def apply(self, knobs: Knobs) -> None: ...


class SensorSource(Protocol):
    def cpu(self) -> CpuReading | None: ...

    def temperature(self) -> Reading: ...

    def throttled(self) -> int | None: ...

    def power(self, system_pct: float | None) -> Reading: ...


@dataclass(slots=True)
class _Window:
    """Sums over the current stats interval."""

    start: float
    counters: Counters
    cpu: list[float] = field(default_factory=list)


@dataclass
class Lane:
    """One camera as the governor sees it; owned by the governor thread."""

    camera: Governed
    controls: Controls
    controller: Controller
    publish: Callable[[dict[str, Any]], None] | None
    prev: Counters
    window: _Window
    last: dict[str, Any] = field(default_factory=dict)  # the latest readings, for stats


class Governor:
    """Runs every camera's controller once a period and publishes `stats` every
    `stats_interval` seconds.

    Its thread owns the sensors and the controllers; it steers a camera only through
    `apply()`, which swaps one immutable `Knobs`, and reads budgets from the camera's
    `Controls` each period, so a budget changed over MQTT takes effect within a second.
    """

    def __init__(
        self,
        sensors: SensorSource,
        stats_interval: float = 5.0,
        period: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sensors = sensors
        self.stats_interval = stats_interval
        self.period = period
        self.clock = clock
        self.lanes: list[Lane] = []
        self._then = clock()
        self.sensors.cpu()  # the first CPU reading only sets the baseline

    def add(
        self,
        camera: Governed,
        controls: Controls,
        controller: Controller,
        publish: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Govern one more camera (before `run()`)."""
        counters = camera.counters()
        window = _Window(self.clock(), counters)
        self.lanes.append(Lane(camera, controls, controller, publish, counters, window))

    def run(self, stop: threading.Event) -> None:
        for lane in self.lanes:
            lane.camera.apply(lane.controller.knobs)
        while not stop.wait(self.period):
            try:
                self.tick()
            except Exception:  # the governor must never take the cameras down with it
                log.exception("governor: tick failed")

    def tick(self) -> None:
        now = self.clock()
        span = max(now - self._then, 1e-6)
        self._then = now
        cpu = self.sensors.cpu()
        power = self.sensors.power(cpu.system_pct if cpu else None)
        temp, throttled = self.sensors.temperature(), self.sensors.throttled()
        counters = [lane.camera.counters() for lane in self.lanes]
        pairs = zip(counters, self.lanes, strict=True)
        # A camera's share: its inference and its JPEG encoding (live view, snapshots).
        used = [_busy_ms(c) - _busy_ms(lane.prev) for c, lane in pairs]
        total = sum(used)
        for lane, now_counters, ms in zip(self.lanes, counters, used, strict=True):
            share = ms / total if total > 0 else 1 / len(self.lanes)
            before, lane.prev = lane.prev, now_counters
            sample = Sample(
                now=now,
                cpu_pct=cpu.process_pct * share if cpu else None,
                power=power,
                temp=temp,
                throttled=throttled,
                admitted_fps=(now_counters.admitted - before.admitted) / span,
                fps_in=(now_counters.captured - before.captured) / span,
                inference_ms=_mean_inference(before, now_counters),
            )
            self._steer(lane, sample, now, now_counters)

    def _steer(self, lane: Lane, sample: Sample, now: float, counters: Counters) -> None:
        budgets = Budgets.of(lane.controls)
        old = lane.controller.knobs
        knobs, why = lane.controller.update(sample, budgets, lane.controls.get("stride"))
        if knobs != old:
            lane.camera.apply(knobs)
            log.info("governor: %s: %s", why, describe_change(old, knobs))
        lane.last = {"sample": sample, "budgets": budgets}
        if sample.cpu_pct is not None:
            lane.window.cpu.append(sample.cpu_pct)
        if now - lane.window.start >= self.stats_interval - 1e-6:
            message = stats(lane, now, counters)
            lane.window = _Window(now, counters)
            if lane.publish is not None:
                lane.publish(message)


def stats(lane: Lane, now: float, counters: Counters) -> dict[str, Any]:
    """The `stats` message over the lane's current window (see docs/governor.md)."""
    window, sample, budgets = lane.window, lane.last["sample"], lane.last["budgets"]
    span = max(now - window.start, 1e-6)
    before = window.counters
    knobs = lane.controller.knobs
    return {
        "fps_in": round((counters.captured - before.captured) / span, 2),
        "fps_classified": round((counters.classified - before.classified) / span, 2),
        "skipped": {r: counters.skipped[r] - before.skipped[r] for r in SKIP_REASONS},
        "inference_ms": _round(_mean_inference(before, counters), 2),
        "cpu_pct": _round(sum(window.cpu) / len(window.cpu) if window.cpu else None, 1),
        "power_w": _round(sample.power.value, 2),
        "power_source": sample.power.label,
        "temp_c": _round(sample.temp.value, 1),
        "throttled": sample.throttled,
        "stride": max(knobs.stride, lane.controls.get("stride")),
        "fps_limit": knobs.max_fps,
        "resolution": counters.resolution,
        "workers": knobs.workers,
        "rung": knobs.rung,
        "cpu_budget": budgets.cpu,
        "power_budget": budgets.power,
        "temp_limit": budgets.temp,
    }


def _busy_ms(counters: Counters) -> float:
    return counters.inference_ms + counters.view_ms


def _mean_inference(before: Counters, after: Counters) -> float | None:
    done = after.classified - before.classified
    return (after.inference_ms - before.inference_ms) / done if done > 0 else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def describe_change(old: Knobs, new: Knobs) -> str:
    """`stride 1->3, source fps limit none->40, workers 2->1`: only what changed."""
    parts = []
    for name, label in (
        ("stride", "stride"),
        ("max_fps", "source fps limit"),
        ("workers", "workers"),
        ("rung", "model ladder rung"),
    ):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            parts.append(f"{label} {'none' if a is None else a}->{'none' if b is None else b}")
    return ", ".join(parts)
