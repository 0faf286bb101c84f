"""The controller and the governor loop, driven by a fake clock, fake sensors and a simulated load.

The simulated pipeline costs `cost` percent of the machine per admitted frame per second,
plus `base`, and admits what the knobs let through, up to `capacity` frames per second.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from camapp.capture import Frame
from camapp.capture.motion import MotionGate
from camapp.governor.controller import (
    LOW,
    MAX_REPLAY_STRIDE,
    RECOVER_AFTER,
    TEMP_HOLD,
    Budgets,
    Controller,
    Sample,
    SourceInfo,
)
from camapp.governor.loop import Governor
from camapp.governor.sensors import UNAVAILABLE, CpuReading, Reading, Sensors
from camapp.runtime.camera import SKIP_REASONS, Counters, Knobs
from camapp.runtime.controls import Controls
from tests.conftest import lone_queue
from tests.test_sensors import PMIC_SAMPLE, FakeClock, FakeRunner

REPLAY = SourceInfo(paced=False, slowable=True, fps=0.0)  # --no-realtime file
CAMERA = SourceInfo(paced=True, slowable=False, fps=15.0)
PACED_REPLAY = SourceInfo(paced=True, slowable=True, fps=12.5)


@dataclass
class Plant:
    """What a pipeline under `knobs` admits and costs, per period."""

    source: SourceInfo
    cost: float = 0.5  # % of the machine per admitted frame/s
    base: float = 1.0
    capacity: float = 200.0  # frames/s the source decodes when unthrottled
    noise: float = 0.0  # relative, uniform
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def admitted(self, knobs: Knobs) -> float:
        fps = self.source.fps if self.source.paced else self.capacity
        if knobs.max_fps is not None:
            fps = min(fps, knobs.max_fps)
        return fps / knobs.stride

    def cpu(self, knobs: Knobs) -> float:
        jitter = 1 + self.noise * self.rng.uniform(-1, 1) if self.noise else 1.0
        return (self.base + self.cost * self.admitted(knobs)) * jitter


def sample(now: float, cpu: float | None, admitted: float, **kw) -> Sample:
    values = {
        "power": Reading(4.0, "estimated", "model"),
        "temp": Reading(50.0, "measured", "thermal:cpu-thermal"),
        "throttled": 0,
        "fps_in": admitted,
        "inference_ms": 4.0,
    } | kw
    return Sample(now=now, cpu_pct=cpu, admitted_fps=admitted, **values)


def drive(controller: Controller, plant: Plant, budgets: Budgets, seconds: int, start: float = 0):
    """Run the loop once a simulated second; return (cpu, knobs, reason) per period."""
    history = []
    for t in range(seconds):
        knobs = controller.knobs
        cpu = plant.cpu(knobs)
        admitted = plant.admitted(knobs)  # read from the source: before the stride
        reading = sample(start + t, cpu, admitted, fps_in=admitted * knobs.stride)
        new, why = controller.update(reading, budgets)
        history.append((cpu, new, why))
    return history


def test_over_budget_degrades_at_once_to_below_the_budget() -> None:
    controller, plant = Controller(REPLAY, 2, 3.0), Plant(REPLAY)
    history = drive(controller, plant, Budgets(cpu=30), 10)
    assert history[0][0] > 90  # unthrottled: 101 %
    assert history[0][2].startswith("cpu 101% of budget 30%")
    # One period later it is under the budget, and stays there.
    assert all(LOW * 30 <= cpu <= 30 for cpu, _, _ in history[1:])
    knobs = controller.knobs
    assert knobs.stride == 1 and knobs.max_fps is not None  # a replay is slowed, not strided
    assert knobs.workers == 1  # ~55 frames/s * 4 ms needs a fraction of one worker


def test_under_budget_recovers_slowly_and_only_as_far_as_the_budget() -> None:
    controller, plant = Controller(REPLAY, 2, 3.0), Plant(REPLAY)
    drive(controller, plant, Budgets(cpu=20), 5)
    low_rate = controller.rate
    history = drive(controller, plant, Budgets(cpu=60), 60, start=5)
    rates = [plant.admitted(knobs) for _, knobs, _ in history]
    # Slow: never more than 15 % per step, and steps at least 3 periods apart.
    steps = [i for i in range(1, len(rates)) if rates[i] != rates[i - 1]]
    assert steps and all(b - a >= 3 for a, b in itertools.pairwise(steps))
    assert all(rates[i] <= rates[i - 1] * 1.15 + 0.01 for i in range(1, len(rates)))
    assert controller.rate > 2 * low_rate
    assert all(cpu <= 60 for cpu, _, _ in history)
    assert LOW * 60 <= history[-1][0] <= 60  # settled inside the dead band


def test_no_flapping_at_the_boundary() -> None:
    controller = Controller(REPLAY, 2, 3.0)
    # +-8 % measurement noise around a steady state inside the dead band.
    plant = Plant(REPLAY, noise=0.08)
    drive(controller, plant, Budgets(cpu=40), 10)
    history = drive(controller, plant, Budgets(cpu=40), 120, start=10)
    changes = [why for _, _, why in history if why]
    assert len(changes) <= 3, changes


def test_a_load_that_varies_with_the_scene_is_probed_less_and_less_often() -> None:
    controller = Controller(REPLAY, 2, 3.0)
    # +-25 % from one period to the next (a motion-gated scene): wider than the dead band.
    plant = Plant(REPLAY, noise=0.25)
    history = drive(controller, plant, Budgets(cpu=40), 300)
    changes = [t for t, (_, _, why) in enumerate(history) if why]
    early = sum(1 for t in changes if t < 60)
    late = sum(1 for t in changes if t >= 240)
    assert late <= 3 and late < early, changes
    cpus = [cpu for cpu, _, _ in history[3:]]
    assert sum(cpus) / len(cpus) <= 40
    # A new budget starts afresh: the first step up comes after RECOVER_AFTER periods again.
    plant.noise = 0.0
    history = drive(controller, plant, Budgets(cpu=90), RECOVER_AFTER + 1, start=300)
    assert [bool(why) for _, _, why in history] == [False] * (RECOVER_AFTER - 1) + [True, False]


def test_no_budget_means_no_limit_and_removing_budgets_restores_full_work() -> None:
    controller, plant = Controller(REPLAY, 2, 3.0), Plant(REPLAY)
    assert drive(controller, plant, Budgets(), 3)[-1][1] == Knobs(1, None, 2)
    drive(controller, plant, Budgets(cpu=10), 3)
    assert controller.knobs.max_fps is not None
    _, knobs, why = drive(controller, plant, Budgets(), 1, start=3)[0]
    assert knobs == Knobs(1, None, 2) and why == "no budget"


def test_a_replay_limit_counts_the_users_stride() -> None:
    controller = Controller(REPLAY, 2, 3.0)
    knobs, _ = controller.update(sample(0, 60, 20), Budgets(cpu=30), user_stride=3)
    # 20 frames/s pass a stride of 3 out of 60 read; half of that is allowed: read 30/s.
    assert knobs.max_fps == pytest.approx(20 * 0.45 * 3)


def test_a_camera_is_strided_and_a_paced_replay_slowed_past_the_stride_limit() -> None:
    camera = Controller(CAMERA, 4, 3.0)
    drive(camera, Plant(CAMERA, cost=2.0), Budgets(cpu=10), 5)
    assert camera.knobs.stride > 1 and camera.knobs.max_fps is None
    replay = Controller(PACED_REPLAY, 4, 3.0)
    drive(replay, Plant(PACED_REPLAY, cost=20.0, base=0.0), Budgets(cpu=2), 10)
    knobs = replay.knobs
    assert knobs.stride == MAX_REPLAY_STRIDE and knobs.max_fps < 12.5


def test_a_camera_slower_than_it_says_is_strided_on_what_it_delivers() -> None:
    camera = Controller(CAMERA, 4, 3.0)  # says 15 fps
    # In the dark it delivers 7.5: a stride of 3 planned on 15 would pass 2.5 of the 5 allowed.
    assert camera.plan(5.0, 7.5, 1).stride == 2
    assert camera.plan(5.0, 14.0, 1).stride == 3  # near enough: the nominal rate, no flapping


def test_temperature_cuts_then_waits_for_the_soc_to_respond() -> None:
    controller = Controller(CAMERA, 4, 3.0)
    budgets = Budgets(temp=70)
    hot = Reading(72.0, "measured", "thermal:cpu-thermal")
    knobs, why = controller.update(sample(0, 10, 15, temp=hot), budgets)
    assert knobs.stride == 2 and why.startswith("temp 72.0°C of limit 70°C")
    # Still hot during the hold: no further cut until TEMP_HOLD has passed.
    # (The camera still delivers 15 frames/s; the stride of 2 lets 7.5 through.)
    for t in range(1, int(TEMP_HOLD)):
        assert controller.update(sample(t, 10, 7.5, temp=hot, fps_in=15), budgets)[1] == ""
    hot_again = sample(TEMP_HOLD, 10, 7.5, temp=hot, fps_in=15)
    assert controller.update(hot_again, budgets)[0].stride == 3
    # Within TEMP_BAND of the limit: hold; well below: recover.
    warm = Reading(68.0, "measured", "thermal:cpu-thermal")
    for t in range(11, 20):
        assert controller.update(sample(t, 10, 5, temp=warm, fps_in=15), budgets)[1] == ""
    cool = Reading(55.0, "measured", "thermal:cpu-thermal")
    cooled = [sample(t, 10, 5, temp=cool, fps_in=15) for t in range(20, 30)]
    whys = [controller.update(each, budgets)[1] for each in cooled]
    assert any(w.startswith("under budget") for w in whys)


def test_firmware_throttling_counts_as_too_hot_even_without_a_temperature() -> None:
    controller = Controller(CAMERA, 4, 3.0)
    knobs, why = controller.update(
        sample(0, 10, 15, temp=UNAVAILABLE, throttled=0x50005), Budgets(temp=80)
    )
    assert knobs.stride > 1 and why == "firmware throttling"


def test_power_budget_is_held_on_the_part_above_idle() -> None:
    controller = Controller(REPLAY, 2, 3.0)
    # 7 W against a 5 W budget with 3 W idle: twice the allowed 2 W above idle.
    power = Reading(7.0, "estimated", "model")
    knobs, why = controller.update(sample(0, 50, 100, power=power), Budgets(power=5.0))
    assert knobs.max_fps == pytest.approx(100 * 0.9 / 2)
    assert "power 7.00 W (estimated:model) of budget 5 W" in why


def test_over_several_budgets_the_tightest_one_sets_the_cut() -> None:
    """CPU at twice its budget and power at 1.5 times its headroom: the cut is CPU's
    (0.9 / 2), not power's (0.9 / 1.5), and both are named."""
    controller = Controller(REPLAY, 2, 3.0)
    power = Reading(6.0, "estimated", "model")  # 3 W above idle against 2 W allowed: 1.5x
    knobs, why = controller.update(sample(0, 60, 100, power=power), Budgets(cpu=30, power=5.0))
    assert knobs.max_fps == pytest.approx(100 * 0.9 / 2)
    assert "cpu 60% of budget 30%" in why and "power 6.00 W" in why
    # The other way round: power the tighter, CPU just over.
    controller = Controller(REPLAY, 2, 3.0)
    power = Reading(9.0, "estimated", "model")  # 6 W above idle against 2 W: 3x
    knobs, _ = controller.update(sample(0, 33, 100, power=power), Budgets(cpu=30, power=5.0))
    assert knobs.max_fps == pytest.approx(100 * 0.9 / 3)


def test_recovery_never_raises_the_rate_past_1_5x_what_the_pipeline_achieves() -> None:
    """Under budget because little is admitted (a slow decoder, a motion-gated scene): the
    rate may not climb far above what passes, or it would let the work jump past the
    budget as soon as more could pass."""
    controller = Controller(REPLAY, 2, 3.0)
    controller.update(sample(0, 60, 100), Budgets(cpu=30))  # cut to 45 frames/s
    assert controller.rate == pytest.approx(45)
    for t in range(1, 60):  # then 10 frames/s pass, at 5 % CPU: far under the budget
        controller.update(sample(t, 5, 10), Budgets(cpu=30))
    assert controller.rate == pytest.approx(45)  # 1.5 x 10 is below it: no step up at all
    for t in range(60, 120):  # 40 frames/s pass: room up to 60, and no further
        controller.update(sample(t, 5, 40), Budgets(cpu=30))
    assert controller.rate == pytest.approx(60)


def test_a_failing_power_sensor_falls_back_and_the_budget_still_holds(tmp_path: Path) -> None:
    answers: dict = {"pmic_read_adc": PMIC_SAMPLE}
    clock = FakeClock()
    sensors = Sensors(proc=tmp_path, sys=tmp_path, run=FakeRunner(answers), clock=clock)
    assert sensors.power(90.0).label == "measured:pmic"  # ~10.3 W
    answers["pmic_read_adc"] = OSError(5, "Input/output error")
    clock.now += 1.0
    power = sensors.power(90.0)
    assert power.label == "estimated:model" and power.value == pytest.approx(6.05)
    controller = Controller(REPLAY, 2, sensors.power_model[0])
    knobs, why = controller.update(sample(0, 50, 100, power=power), Budgets(power=5.0))
    assert knobs.max_fps is not None and "estimated:model" in why


# The governor loop: fake pipeline, fake sensors, fake clock ------------------------------------


class FakePipeline:
    def __init__(self) -> None:
        self.applied: list[Knobs] = []
        self.captured = self.classified = 0
        self.skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.inference_ms = 0.0
        self.view_ms = 0.0

    def counters(self) -> Counters:
        admitted = self.captured - self.skipped["stride"] - self.skipped["paused"]
        return Counters(
            self.captured,
            admitted,
            self.classified,
            dict(self.skipped),
            self.inference_ms,
            "768x432",
            self.view_ms,
        )

    def apply(self, knobs: Knobs) -> None:
        self.applied.append(knobs)

    def advance(self, captured: int, classified: int, stride_skipped: int) -> None:
        self.captured += captured
        self.classified += classified
        self.skipped["stride"] += stride_skipped
        self.inference_ms += 4.0 * classified


class FakeSensors:
    def __init__(self) -> None:
        self.process_pct = 10.0

    def cpu(self) -> CpuReading:
        return CpuReading(self.process_pct, 60.0)

    def temperature(self) -> Reading:
        return Reading(48.5, "measured", "thermal:cpu-thermal")

    def throttled(self) -> int:
        return 0

    def power(self, system_pct: float | None) -> Reading:
        return Reading(5.52, "estimated", "model")


STATS_KEYS = {
    "fps_in",
    "fps_classified",
    "skipped",
    "inference_ms",
    "cpu_pct",
    "power_w",
    "power_source",
    "temp_c",
    "throttled",
    "stride",
    "fps_limit",
    "resolution",
    "workers",
    "rung",
    "cpu_budget",
    "power_budget",
    "temp_limit",
}


def test_governor_applies_runtime_budgets_and_publishes_stats() -> None:
    clock, pipeline, sensors = FakeClock(), FakePipeline(), FakeSensors()
    controls = Controls(stride=1)
    published: list[dict] = []
    governor = Governor(sensors, stats_interval=5.0, clock=clock)
    governor.add(pipeline, controls, Controller(REPLAY, 2, 3.0), publish=published.append)
    for _ in range(4):
        clock.now += 1.0
        pipeline.advance(captured=100, classified=100, stride_skipped=0)
        governor.tick()
    assert pipeline.applied == [] and published == []  # no budget: nothing to change
    # A budget arrives over MQTT (Controls.update); the next period enforces it.
    controls.update({"cpu_budget": 5})
    sensors.process_pct = 10.0
    clock.now += 1.0
    pipeline.advance(captured=100, classified=100, stride_skipped=0)
    governor.tick()
    assert pipeline.applied[-1].max_fps == pytest.approx(100 * 0.9 / 2)
    [message] = published
    assert set(message) == STATS_KEYS
    assert message["fps_in"] == 100.0 and message["fps_classified"] == 100.0
    assert message["skipped"] == dict.fromkeys(SKIP_REASONS, 0)
    assert message["inference_ms"] == 4.0 and message["cpu_pct"] == 10.0
    assert message["power_w"] == 5.52 and message["power_source"] == "estimated:model"
    assert message["temp_c"] == 48.5 and message["throttled"] == 0
    assert message["cpu_budget"] == 5 and message["power_budget"] is None
    assert message["workers"] == 1 and message["fps_limit"] == 45.0
    assert message["resolution"] == "768x432" and message["stride"] == 1


def test_governor_thread_stops_promptly() -> None:
    pipeline = FakePipeline()
    governor = Governor(FakeSensors(), period=0.05)
    governor.add(pipeline, Controls(), Controller(REPLAY, 2, 3.0))
    stop = threading.Event()
    thread = threading.Thread(target=governor.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert pipeline.applied == [Knobs(1, None, 2)]  # starts by putting its knobs in force


# The knobs in the pipeline --------------------------------------------------------------------


def test_motion_gate_skips_an_unchanged_scene_until_it_changes_or_is_due() -> None:
    gate = MotionGate(threshold=3.0, refresh=10.0)
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, (432, 768, 3), dtype=np.uint8)
    noisy = np.clip(scene.astype(int) + rng.integers(-2, 3, scene.shape), 0, 255).astype(np.uint8)
    moved = np.roll(scene, 200, axis=1)
    assert gate.changed(scene, 0.0)  # the first frame always passes
    assert not gate.changed(noisy, 1.0)  # sensor noise is not motion
    assert gate.changed(moved, 2.0)
    assert not gate.changed(moved, 5.0)
    assert gate.changed(moved, 12.0)  # forced refresh, 10 s after the last classification


def test_motion_gate_lets_a_new_scene_be_confirmed() -> None:
    gate = MotionGate(threshold=3.0, refresh=10.0, follow=2)
    scene = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    moved = np.roll(scene, 60, axis=1)
    passed = [gate.changed(img, t) for t, img in enumerate([scene] * 4 + [moved] * 4)]
    # Each change (the first frame counts as one) and the two frames after it pass.
    assert passed == [True, True, True, False, True, True, True, False]


def test_inactive_workers_take_no_frames_until_reactivated() -> None:
    hub, queue = lone_queue(2, drop_oldest=False)
    hub.set_demand(queue, 1)
    got: list[int] = []
    second = threading.Thread(target=lambda: got.append(hub.get(1)[1]))
    second.start()
    image = np.zeros((2, 2, 3), np.uint8)
    queue.put(Frame(0, 0.0, image, 0.0))
    assert hub.get(0)[1] == 0  # worker 0 is active
    queue.put(Frame(1, 0.0, image, 0.0))
    second.join(0.2)
    assert second.is_alive() and not got  # worker 1 waits although a frame is queued
    hub.set_demand(queue, 2)
    second.join(2)
    assert got == [1]


def test_plan_workers_follow_the_rate() -> None:
    controller = Controller(REPLAY, 4, 3.0)
    controller.update(sample(0, 90, 100, inference_ms=30.0), Budgets(cpu=50))
    # Allowed ~50 frames/s at 30 ms each = 1.5 busy workers; sized for 80 % utilisation.
    assert controller.knobs.workers == math.ceil(controller.rate * 0.03 * 1.25) == 2


def test_a_paced_replay_released_from_a_slowdown_does_not_race(photos_clip) -> None:
    from camapp.capture.opencv import MAX_LAG, FileSource

    video, meta = photos_clip
    source = FileSource(video, realtime=True)
    try:
        source.read()
        time.sleep(MAX_LAG + 0.3)  # the governor held the source back
        started = time.monotonic()
        for _ in range(4):
            source.read()
        # Paced at the clip's rate again, not four frames of backlog at decode speed.
        assert time.monotonic() - started >= 2.5 / meta["fps"]
    finally:
        source.close()


# The model ladder -----------------------------------------------------------------------------


@dataclass
class LadderPlant(Plant):
    """A camera whose frames cost less on a lower rung of the model ladder."""

    costs: tuple[float, ...] = (1.0, 0.4, 0.1)

    def cpu(self, knobs: Knobs) -> float:
        return self.base + self.cost * self.costs[knobs.rung] * self.admitted(knobs)


def test_policy_model_steps_down_the_ladder_instead_of_skipping_frames() -> None:
    plant = LadderPlant(CAMERA, cost=4.0)  # 15 fps: 61 % on the top model, 25 % one down
    controller = Controller(CAMERA, 2, 3.0, plant.costs, "model")
    history = drive(controller, plant, Budgets(cpu=30), 20)
    assert history[0][1].rung == 1 and history[0][2].endswith("a cheaper model")
    assert all(knobs.stride == 1 and knobs.rung == 1 for _, knobs, _ in history)  # every frame
    assert max(cpu for cpu, _, _ in history[1:]) <= 30


def test_policy_stride_keeps_the_model_and_skips_frames() -> None:
    plant = LadderPlant(CAMERA, cost=4.0)
    controller = Controller(CAMERA, 2, 3.0, plant.costs, "stride")
    history = drive(controller, plant, Budgets(cpu=30), 20)
    assert all(knobs.rung == 0 for _, knobs, _ in history) and history[-1][1].stride > 1


def test_policy_auto_cuts_what_the_cheaper_model_does_not_save() -> None:
    plant = LadderPlant(CAMERA, cost=8.0)  # 121 % on top; 49 % one down: still over 30
    controller = Controller(CAMERA, 2, 3.0, plant.costs, "auto")
    history = drive(controller, plant, Budgets(cpu=30), 20)
    first = history[0][1]
    assert first.rung == 1 and first.stride > 1  # both at once
    assert max(cpu for cpu, _, _ in history[1:]) <= 30 * 1.05


def test_the_ladder_is_climbed_back_when_the_bigger_model_fits() -> None:
    plant = LadderPlant(CAMERA, cost=4.0)
    controller = Controller(CAMERA, 2, 3.0, plant.costs, "model")
    drive(controller, plant, Budgets(cpu=30), 10)
    assert controller.rung == 1
    history = drive(controller, plant, Budgets(cpu=90), 30, start=10)  # 61 % fits under 72
    assert controller.rung == 0 and any(why.endswith("a bigger model") for _, _, why in history)
    assert max(cpu for cpu, _, _ in history) <= 90
