"""What the governor measures: CPU, temperature, throttling flags and board power.

Every reading says where it came from (`measured` or `estimated`, and by what), because a
power budget enforced against a model is not the same promise as one enforced against a
meter. Each sensor that fails falls back to the next one and nothing here raises: a missing
file or command only changes the reading's source. External commands (`vcgencmd`) run at
most once per `min_interval` seconds; a command that is not installed is never run again.

The /proc and /sys roots, the command runner and the clock are injectable, so tests use
fake trees with real file formats.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

Runner = Callable[[list[str]], str]

# Pi 5 PMIC: the rails sum misses the 5 V side (USB, fan, HATs) and the PMIC's own conversion
# losses. Linear fit of the rails sum against a USB-C power meter, from jfikar/RPi5-power:
# board W = rails W * 1.1451 + 0.5879.
PMIC_GAIN, PMIC_OFFSET = 1.1451, 0.5879

# Linear power model defaults, (idle W, all cores busy W), for a bare board without peripherals.
POWER_MODELS: dict[str, tuple[float, float]] = {
    "pi5": (3.0, 7.2),
    "pi4": (2.9, 6.4),
}
DEFAULT_POWER_MODEL = "pi4"  # on unknown boards: the most common camapp host

# `vcgencmd get_throttled` bits that are true now (16-19 are the same, "since boot").
UNDER_VOLTAGE, FREQ_CAPPED, THROTTLED, SOFT_TEMP_LIMIT = 0x1, 0x2, 0x4, 0x8

PREFERRED_ZONES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc_thermal", "soc-thermal")

_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-\d.]+)[AV]\s*$")


@dataclass(frozen=True, slots=True)
class Reading:
    """A value and its provenance: `source` is measured/estimated/unavailable, `via` the how."""

    value: float | None
    source: str
    via: str

    @property
    def label(self) -> str:
        return f"{self.source}:{self.via}" if self.value is not None else "unavailable"


UNAVAILABLE = Reading(None, "unavailable", "none")


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Busy percent of the whole machine (100 = every core) since the previous reading."""

    process_pct: float
    system_pct: float


def run_command(args: list[str]) -> str:
    """Run a short external command; OSError / CalledProcessError / timeout on failure."""
    return subprocess.run(args, capture_output=True, text=True, timeout=2, check=True).stdout


class _RateLimited:
    """Runs each command at most once per interval, replaying the last output (or failure)."""

    def __init__(self, run: Runner, clock: Callable[[], float], interval: float) -> None:
        self._run, self._clock, self._interval = run, clock, interval
        self._last: dict[tuple[str, ...], tuple[float, str | None]] = {}
        self._missing: set[str] = set()

    def __call__(self, args: list[str]) -> str | None:
        if args[0] in self._missing:
            return None
        key, now = tuple(args), self._clock()
        cached = self._last.get(key)
        if cached is not None and now - cached[0] < self._interval:
            return cached[1]
        try:
            out: str | None = self._run(args)
        except FileNotFoundError:
            self._missing.add(args[0])  # not a Pi (or no firmware tools): never try again
            out = None
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("%s failed: %s", " ".join(args), exc)
            out = None
        self._last[key] = (now, out)
        return out


class Sensors:
    """All readings the governor needs. Not thread-safe: the governor thread owns it."""

    def __init__(
        self,
        proc: Path | str = "/proc",
        sys: Path | str = "/sys",
        run: Runner = run_command,
        clock: Callable[[], float] = time.monotonic,
        power_model: tuple[float, float] | None = None,
        min_interval: float = 1.0,
    ) -> None:
        self.proc, self.sys = Path(proc), Path(sys)
        self._cmd = _RateLimited(run, clock, min_interval)
        self._clock = clock
        self._cpu_prev: tuple[int, int, int] | None = None
        self._rapl_prev: tuple[float, dict[str, int]] | None = None
        self._power_via: str | None = None
        self.board = self._board()
        default = POWER_MODELS[DEFAULT_POWER_MODEL]
        self.power_model = power_model or POWER_MODELS.get(self.board, default)

    def _board(self) -> str:
        """`pi4`, `pi5`... from the device tree, else `unknown`."""
        try:
            model = (self.proc / "device-tree" / "model").read_text(errors="replace")
        except OSError:
            return "unknown"
        found = re.search(r"Raspberry Pi (\d)", model)
        return f"pi{found.group(1)}" if found else "unknown"

    # CPU -----------------------------------------------------------------------------------

    def cpu(self) -> CpuReading | None:
        """Process and system CPU since the previous call; None on the first call or failure.

        Both are jiffies over the jiffies of every core in /proc/stat, so 100 = all cores.
        """
        try:
            total, idle = machine_jiffies((self.proc / "stat").read_text())
            process = process_jiffies((self.proc / "self" / "stat").read_text())
        except (OSError, ValueError, IndexError) as exc:
            log.debug("cpu: %s", exc)
            return None
        prev, self._cpu_prev = self._cpu_prev, (total, idle, process)
        if prev is None or total <= prev[0]:
            return None
        span = total - prev[0]
        return CpuReading(
            process_pct=100.0 * (process - prev[2]) / span,
            system_pct=100.0 * (span - (idle - prev[1])) / span,
        )

    # Temperature and throttling --------------------------------------------------------------

    def temperature(self) -> Reading:
        """SoC temperature in °C: thermal zones (the CPU's if named), else vcgencmd."""
        zones: dict[str, float] = {}
        for zone in sorted((self.sys / "class" / "thermal").glob("thermal_zone*")):
            try:
                kind = (zone / "type").read_text().strip()
                zones.setdefault(kind, int((zone / "temp").read_text()) / 1000.0)
            except (OSError, ValueError):
                continue
        for kind in PREFERRED_ZONES:
            if kind in zones:
                return Reading(zones[kind], "measured", f"thermal:{kind}")
        if zones:
            kind = max(zones, key=zones.__getitem__)
            return Reading(zones[kind], "measured", f"thermal:{kind}")
        out = self._cmd(["vcgencmd", "measure_temp"])
        found = re.search(r"temp=([-\d.]+)", out or "")
        if found:
            return Reading(float(found.group(1)), "measured", "vcgencmd")
        return UNAVAILABLE

    def throttled(self) -> int | None:
        """`vcgencmd get_throttled` flags (see the bit constants), None where unavailable."""
        found = re.search(
            r"throttled=(0x[0-9a-fA-F]+)", self._cmd(["vcgencmd", "get_throttled"]) or ""
        )
        return int(found.group(1), 16) if found else None

    # Power -----------------------------------------------------------------------------------

    def power(self, system_pct: float | None) -> Reading:
        """Board power in W: Pi 5 PMIC, hwmon, Intel RAPL, else the linear model."""
        for read in (self._pmic, self._hwmon, self._rapl):
            watts, via = read()
            if watts is not None:
                reading = Reading(round(watts, 3), "measured", via)
                break
        else:
            idle, full = self.power_model
            busy = min(max((system_pct or 0.0) / 100.0, 0.0), 1.0)
            reading = Reading(round(idle + (full - idle) * busy, 3), "estimated", "model")
        if reading.via != self._power_via:
            log.info("power: %s", reading.label)
            self._power_via = reading.via
        return reading

    def _pmic(self) -> tuple[float | None, str]:
        out = self._cmd(["vcgencmd", "pmic_read_adc"])
        if not out:
            return None, ""
        rails_w = pmic_rails_watts(out)
        if rails_w is None:
            return None, ""
        return rails_w * PMIC_GAIN + PMIC_OFFSET, "pmic"

    def _hwmon(self) -> tuple[float | None, str]:
        """The first hwmon chip reporting power (µW); sums its channels."""
        for chip in sorted((self.sys / "class" / "hwmon").glob("hwmon*")):
            files = sorted(chip.glob("power*_input")) or sorted(chip.glob("power*_average"))
            try:
                watts = sum(int(f.read_text()) for f in files) / 1e6
                name = (chip / "name").read_text().strip() if (chip / "name").exists() else ""
            except (OSError, ValueError):
                continue
            if files:
                return watts, f"hwmon:{name or chip.name}"
        return None, ""

    def _rapl(self) -> tuple[float | None, str]:
        """Package power from RAPL energy counters (root-only on most kernels since 2020)."""
        energy: dict[str, int] = {}
        ranges: dict[str, int] = {}
        for domain in sorted((self.sys / "class" / "powercap").glob("intel-rapl:*")):
            if domain.name.count(":") != 1:  # sub-domains (core, uncore) are inside the package
                continue
            try:
                energy[domain.name] = int((domain / "energy_uj").read_text())
                ranges[domain.name] = int((domain / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                return None, ""
        if not energy:
            return None, ""
        now = self._clock()
        prev, self._rapl_prev = self._rapl_prev, (now, energy)
        if prev is None or now <= prev[0] or set(prev[1]) != set(energy):
            return None, ""
        joules = 0.0
        for name, uj in energy.items():
            delta = uj - prev[1][name]
            joules += (delta + ranges[name] if delta < 0 else delta) / 1e6  # counter wrapped
        return joules / (now - prev[0]), "rapl"


def process_jiffies(stat: str) -> int:
    """utime + stime (fields 14, 15) of a /proc/<pid>/stat text. comm (field 2) may hold
    spaces and parentheses, so the fields are counted after its closing one."""
    after = stat[stat.rindex(")") + 2 :].split()
    return int(after[11]) + int(after[12])


def machine_jiffies(stat: str) -> tuple[int, int]:
    """(total, idle) jiffies of every core from /proc/stat's first line: user nice system
    idle iowait irq softirq steal (guest is inside user); iowait is idle, steal is busy."""
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def pmic_rails_watts(text: str) -> float | None:
    """Sum of V*I over the rails `vcgencmd pmic_read_adc` reports both for; None if none."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        found = _PMIC_LINE.match(line)
        if found:
            rail, kind, value = found.groups()
            (amps if kind == "A" else volts)[rail] = float(value)
    rails = amps.keys() & volts.keys()
    if not rails:
        return None
    return sum(amps[r] * volts[r] for r in rails)
