"""The governor's decision logic (pure: no threads, no I/O, time comes in with each sample).

Keep camapp within its CPU, power and temperature budgets while classifying as much as it can.

Once a period (1 s) the governor reads the sensors and the pipeline's counters, and the
`Controller` decides one number, the *rate*: how many frames per second may pass the stride
towards the classifier. The controller is a closed loop with hysteresis:

- over any budget: cut the rate at once, in proportion, to TARGET (90 %) of the tightest one;
- within LOW..100 % of the tightest budget: hold (the dead band that prevents oscillation);
- under LOW (80 %) of every budget for RECOVER_AFTER periods: raise it by RECOVER_STEP (15 %).
  0.8 * 1.15 < 1, so a step up can never carry a steady load over a budget;
- a load that is not steady (a motion-gated scene, a neighbour's CPU) can still push a step
  up over. Each time a budget is exceeded soon after a step up, the wait before the next
  step up doubles (up to MAX_PATIENCE periods); QUIET periods without excess, or new
  budgets, reset it. So the loop probes for more work less and less often instead of cycling.

The rate is then turned into knobs (`Knobs`), each chosen to spend the least CPU per
classified frame, so the rate the loop settles at is the most classifications within budget:
a file read on demand is slowed rather than decoded and thrown away; a camera, which delivers
frames anyway, skips them (stride); a paced replay strides until stride MAX_REPLAY_STRIDE and
is slowed beyond (by then decoding the skipped frames costs more than classifying); and only
as many workers stay active as the rate needs, which flattens the CPU (and power) peaks.

Every change is logged with its reason; the knobs in force are in the `stats` message.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from camapp.governor.sensors import (
    SOFT_TEMP_LIMIT,
    THROTTLED,
    UNDER_VOLTAGE,
    Reading,
)
from camapp.runtime.camera import Knobs
from camapp.runtime.controls import Controls

log = logging.getLogger(__name__)

TARGET = 0.9  # a cut aims at this fraction of the tightest budget
LOW = 0.8  # under this fraction of every budget is "under": the loop may recover
RECOVER_STEP = 1.15  # rate multiplier per recovery step (< 1 / LOW: no overshoot)
RECOVER_AFTER = 3  # consecutive periods under before each step up
MAX_PATIENCE = 60  # the longest wait between step ups after repeated failed probes
QUIET = 120  # periods without excess after which the wait is back to RECOVER_AFTER
MAX_CUT = 0.25  # one period never cuts the rate below a quarter
TEMP_BAND = 3.0  # °C under the limit that count as "at the limit" (hold)
TEMP_CUT = 0.7  # rate multiplier per cut for temperature or firmware throttling
TEMP_HOLD = 10.0  # s between cuts for temperature: the SoC heats and cools slowly
MIN_RATE = 0.1  # frames/s: at worst one classification every 10 s
MAX_REPLAY_STRIDE = 8  # beyond this a paced replay is slowed instead of strided
MAX_STRIDE = 1000
# A live source's measured frame rate replaces its nominal one when this far off; nearer,
# the nominal rate is kept so that measurement noise cannot make the stride flap.
FPS_TRUST = 0.15
WORKER_HEADROOM = 1.25  # active workers sized for 80 % utilisation at the allowed rate
HOT_FLAGS = THROTTLED | SOFT_TEMP_LIMIT  # firmware is already slowing the SoC for heat


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the plan needs to know about the source."""

    paced: bool  # frames arrive at `fps` whether read or not (camera, realtime replay)
    slowable: bool  # reading later costs nothing and loses nothing (video files)
    fps: float  # nominal frame rate, 0 when unknown


@dataclass(frozen=True, slots=True)
class Budgets:
    cpu: float | None = None  # percent of the whole machine
    power: float | None = None  # W
    temp: float | None = None  # °C

    @classmethod
    def of(cls, controls: Controls) -> Budgets:
        values = controls.snapshot()
        return cls(values["cpu_budget"], values["power_budget"], values["temp_limit"])

    def any(self) -> bool:
        return self.cpu is not None or self.power is not None or self.temp is not None


@dataclass(slots=True)
class Sample:
    """One period's measurements, as the controller sees them."""

    now: float
    cpu_pct: float | None  # this process, percent of the whole machine
    power: Reading
    temp: Reading
    throttled: int | None
    admitted_fps: float  # frames that passed the stride, per second
    fps_in: float  # frames read from the source, per second
    inference_ms: float | None  # mean over the period


@dataclass(slots=True)
class _Verdict:
    state: str  # "over", "hold" or "under"
    factor: float = 1.0  # rate multiplier when over
    why: str = ""
    load: float = 0.0  # the highest measured/budget ratio: how much room a bigger model has


class Controller:
    """The decision logic: no threads, no I/O, time comes in with each sample.

    `costs` are the model ladder's inference times, rung 0 (the camera's own model) first,
    each cheaper than the one before; `policy` says how the ladder is used: `stride` never
    (only the rate), `model` instead of the rate (the rate is cut only at the bottom rung),
    `auto` both at once (a step down, and the rate cut by what the cheaper model does not
    save). Recovery goes back the other way: the rate first, then up the ladder when the
    bigger model's cost fits under LOW of the budget.
    """

    def __init__(
        self,
        source: SourceInfo,
        max_workers: int,
        power_idle_w: float,
        costs: tuple[float, ...] = (1.0,),
        policy: str = "stride",
    ) -> None:
        self.source = source
        self.max_workers = max_workers
        self.power_idle_w = power_idle_w
        self.costs = costs
        self.policy = policy
        self.rung = 0
        self.rate: float | None = None  # None: no limit
        self.knobs = self.plan(None, None, 1)
        self._calm = 0  # consecutive periods under every budget
        self._patience = RECOVER_AFTER  # periods under needed before the next step up
        self._since_up = math.inf  # periods since the last step up
        self._since_over = 0  # periods since a budget was last exceeded
        self._budgets = Budgets()
        self._last_temp_cut = -math.inf
        self._inference_s: float | None = None
        self._warned_temp = False

    def update(self, sample: Sample, budgets: Budgets, user_stride: int = 1) -> tuple[Knobs, str]:
        """The knobs for the next period, and why they changed ("" when they did not).

        `user_stride` is the stride the user asked for (Controls), which still applies.
        """
        if sample.inference_ms:
            seconds = sample.inference_ms / 1000
            self._inference_s = (
                seconds if self._inference_s is None else 0.7 * self._inference_s + 0.3 * seconds
            )
        verdict = self._judge(sample, budgets)
        why = ""
        self._since_up += 1
        self._since_over += 1
        if budgets != self._budgets:  # new budgets: start afresh, what failed may fit now
            self._budgets, self._patience, self._calm = budgets, RECOVER_AFTER, 0
        elif self._since_over >= QUIET:
            self._patience = RECOVER_AFTER
        if not budgets.any():
            self.rate, self.rung, self._calm = None, 0, 0
            why = "no budget"
        elif verdict.state == "over":
            why = self._over(sample, verdict)
        elif verdict.state == "hold":
            self._calm = 0
        else:
            why = self._under(sample, verdict)
        knobs = self.plan(self.rate, sample.fps_in, user_stride)
        changed = knobs != self.knobs
        self.knobs = knobs
        return knobs, (why if changed else "")

    def _over(self, sample: Sample, verdict: _Verdict) -> str:
        self._calm, self._since_over = 0, 0
        if self._since_up <= 2 * self._patience:  # the last step up was one too many
            self._patience = min(2 * self._patience, MAX_PATIENCE)
        factor = verdict.factor
        if self.policy != "stride" and self.rung < len(self.costs) - 1:
            cheaper = self.costs[self.rung + 1] / self.costs[self.rung]
            self.rung += 1
            factor /= cheaper  # what the cheaper model does not save, the rate must
            if self.policy == "model" or factor >= 1:
                return f"{verdict.why}: a cheaper model"
        measured = sample.admitted_fps if sample.admitted_fps > 0 else None
        base = min(filter(None, (self.rate, measured)), default=MIN_RATE)
        self.rate = max(MIN_RATE, base * min(factor, 1.0))
        return verdict.why

    def _under(self, sample: Sample, verdict: _Verdict) -> str:
        self._calm += 1
        if self._calm < self._patience:
            return ""
        if self.rate is not None:
            self._calm, self._since_up = 0, 0
            # Never more than 1.5x what the pipeline achieves: a limit far above it would
            # not bind now, and would let the work jump past the budget once it could.
            ceiling = max(self.rate, 1.5 * sample.admitted_fps)
            self.rate = min(self.rate * RECOVER_STEP, ceiling)
            if self.rate >= ceiling and self.rung > 0 and sample.admitted_fps > 0:
                self.rate = None  # every frame passes again: next, the bigger model
            return f"under budget ({verdict.why})"
        if self.rung > 0 and verdict.load * self.costs[self.rung - 1] / self.costs[self.rung] < LOW:
            self._calm, self._since_up = 0, 0
            self.rung -= 1
            return f"under budget ({verdict.why}): a bigger model"
        return ""

    def plan(self, rate: float | None, fps_in: float | None, user_stride: int) -> Knobs:
        """The cheapest knobs that let `rate` frames per second through (None: everything)."""
        rung = self.rung
        if rate is None:
            return Knobs(stride=1, max_fps=None, workers=self.max_workers, rung=rung)
        need = rate * (self._inference_s or 0.05) * WORKER_HEADROOM
        workers = min(self.max_workers, max(1, math.ceil(need)))
        if not self.source.paced:
            return Knobs(1, round(rate * user_stride, 3), workers, rung)
        fps = self.source.fps
        if not self.source.slowable and fps_in and abs(fps_in - fps) > FPS_TRUST * fps:
            # A camera's nominal rate can be wrong (auto-exposure halves it in the dark): a
            # stride planned on it would pass half the allowed rate, and stay there.
            fps = fps_in
        fps = fps or fps_in or rate
        stride = max(1, math.ceil(fps / rate - 1e-9))
        if self.source.slowable and stride > MAX_REPLAY_STRIDE:
            slowed = round(rate * max(user_stride, MAX_REPLAY_STRIDE), 3)
            return Knobs(MAX_REPLAY_STRIDE, slowed, workers, rung)
        return Knobs(min(stride, MAX_STRIDE), None, workers, rung)

    def _judge(self, sample: Sample, budgets: Budgets) -> _Verdict:
        verdicts = [
            v
            for v in (
                self._judge_cpu(sample, budgets.cpu),
                self._judge_power(sample, budgets.power),
                self._judge_temp(sample, budgets.temp),
            )
            if v is not None
        ]
        over = [v for v in verdicts if v.state == "over"]
        load = max((v.load for v in verdicts), default=0.0)
        if over:
            worst = min(over, key=lambda v: v.factor)
            return _Verdict("over", worst.factor, "; ".join(v.why for v in over), load)
        if any(v.state == "hold" for v in verdicts):
            return _Verdict("hold", load=load)
        return _Verdict("under", why="; ".join(v.why for v in verdicts), load=load)

    @staticmethod
    def _ratio_verdict(ratio: float, why: str) -> _Verdict:
        if ratio > 1.0:
            return _Verdict("over", max(MAX_CUT, TARGET / ratio), why, ratio)
        return _Verdict("hold" if ratio >= LOW else "under", why=why, load=ratio)

    def _judge_cpu(self, sample: Sample, budget: float | None) -> _Verdict | None:
        if budget is None or sample.cpu_pct is None:
            return None
        why = f"cpu {sample.cpu_pct:.0f}% of budget {budget:g}%"
        return self._ratio_verdict(sample.cpu_pct / budget, why)

    def _judge_power(self, sample: Sample, budget: float | None) -> _Verdict | None:
        if budget is None:
            return None
        if sample.throttled is not None and sample.throttled & UNDER_VOLTAGE:
            return _Verdict("over", TEMP_CUT, "under-voltage")
        watts = sample.power.value
        if watts is None:
            return None
        # camapp can only move the part above idle: compare that with the headroom above idle.
        ratio = max(watts - self.power_idle_w, 0.0) / max(budget - self.power_idle_w, 0.05)
        why = f"power {watts:.2f} W ({sample.power.label}) of budget {budget:g} W"
        return self._ratio_verdict(ratio, why)

    def _judge_temp(self, sample: Sample, limit: float | None) -> _Verdict | None:
        if limit is None:
            return None
        flags = sample.throttled or 0
        temp = sample.temp.value
        if temp is None and not flags & HOT_FLAGS:
            if not self._warned_temp:
                log.warning(
                    "governor: no temperature sensor; the temperature limit is not enforced"
                )
                self._warned_temp = True
            return None
        hot = (temp is not None and temp > limit) or bool(flags & HOT_FLAGS)
        why = (
            f"temp {temp:.1f}°C of limit {limit:g}°C" if temp is not None else "firmware throttling"
        )
        if hot:
            if sample.now - self._last_temp_cut < TEMP_HOLD:
                return _Verdict("hold", why=why)  # the last cut has not shown its effect yet
            self._last_temp_cut = sample.now
            return _Verdict("over", TEMP_CUT, why)
        if temp is not None and temp >= limit - TEMP_BAND:
            return _Verdict("hold", why=why)
        return _Verdict("under", why=why)
