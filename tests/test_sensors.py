"""Sensors against fake /proc and /sys trees written in real formats, and real vcgencmd output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from camapp.governor.sensors import PMIC_GAIN, PMIC_OFFSET, Sensors, pmic_rails_watts

# `vcgencmd pmic_read_adc` on a Raspberry Pi 5 under load, as published in jfikar/RPi5-power.
PMIC_SAMPLE = """\
 3V7_WL_SW_A current(0)=0.00000000A
   3V3_SYS_A current(1)=0.06245952A
   1V8_SYS_A current(2)=0.16102850A
  DDR_VDD2_A current(3)=0.00780744A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.17566740A
    0V8_SW_A current(6)=0.32791250A
  VDD_CORE_A current(7)=10.87674000A
   3V3_DAC_A current(17)=0.00036630A
   3V3_ADC_A current(18)=0.00042735A
   0V8_AON_A current(16)=0.00579975A
      HDMI_A current(22)=0.01367520A
 3V7_WL_SW_V volt(8)=3.79999600V
   3V3_SYS_V volt(9)=3.30632200V
   1V8_SYS_V volt(10)=1.79828900V
  DDR_VDD2_V volt(11)=1.10292900V
  DDR_VDDQ_V volt(12)=0.60476130V
   1V1_SYS_V volt(13)=1.10439400V
    0V8_SW_V volt(14)=0.80256330V
  VDD_CORE_V volt(15)=0.89745940V
   3V3_DAC_V volt(20)=3.30494200V
   3V3_ADC_V volt(21)=3.30219400V
   0V8_AON_V volt(19)=0.79736190V
      HDMI_V volt(23)=5.07056000V
     EXT5V_V volt(24)=5.06788000V
      BATT_V volt(25)=3.01110800V
"""
# The same rails by hand: VDD_CORE dominates (10.877 A * 0.897 V).
PMIC_RAILS_W = (
    0.06245952 * 3.306322
    + 0.1610285 * 1.798289
    + 0.00780744 * 1.102929
    + 0.1756674 * 1.104394
    + 0.3279125 * 0.8025633
    + 10.87674 * 0.8974594
    + 0.0003663 * 3.304942
    + 0.00042735 * 3.302194
    + 0.00579975 * 0.7973619
    + 0.0136752 * 5.07056
)
THROTTLED_SAMPLE = "throttled=0x50005\n"  # under-voltage and throttled now; both since boot
MEASURE_TEMP_SAMPLE = "temp=61.3'C\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Answers vcgencmd subcommands from a table; raises what the table says for the others."""

    def __init__(self, answers: dict[str, str | BaseException]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str]) -> str:
        self.calls.append(args)
        answer = self.answers.get(args[-1], FileNotFoundError(2, "No such file", args[0]))
        if isinstance(answer, BaseException):
            raise answer
        return answer


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_stat(root: Path, user: int, idle: int, utime: int, stime: int) -> None:
    """/proc/stat and /proc/self/stat in the kernel's formats, for a 2-core machine."""
    write(
        root / "stat",
        f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n"
        f"cpu0 {user // 2} 0 0 {idle // 2} 0 0 0 0 0 0\n"
        f"cpu1 {user // 2} 0 0 {idle // 2} 0 0 0 0 0 0\n"
        "intr 1 2 3\nctxt 42\nbtime 1795513000\n",
    )
    # comm with a space and a parenthesis, as a thread name can have.
    write(
        root / "self" / "stat",
        f"4242 (camapp (x) y) S 1 4242 4242 0 -1 4194304 9000 0 0 0 {utime} {stime} 0 0 "
        "20 0 7 0 123456 900000000 30000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 "
        "0 0 0 0 0\n",
    )


def sensors(tmp_path: Path, answers: dict | None = None, **kwargs) -> tuple[Sensors, FakeRunner]:
    runner = FakeRunner(answers or {})
    kwargs.setdefault("clock", FakeClock())
    made = Sensors(proc=tmp_path / "proc", sys=tmp_path / "sys", run=runner, **kwargs)
    return made, runner


def test_cpu_is_a_percent_of_every_core_between_two_readings(tmp_path: Path) -> None:
    s, _ = sensors(tmp_path)
    proc_stat(tmp_path / "proc", user=1000, idle=9000, utime=100, stime=50)
    assert s.cpu() is None  # the first reading is only a baseline
    # 400 jiffies pass over both cores: 300 busy (of which the process 100), 100 idle.
    proc_stat(tmp_path / "proc", user=1300, idle=9100, utime=180, stime=70)
    reading = s.cpu()
    assert reading is not None
    assert reading.process_pct == pytest.approx(25.0)
    assert reading.system_pct == pytest.approx(75.0)


def test_cpu_without_proc_is_none_not_an_error(tmp_path: Path) -> None:
    s, _ = sensors(tmp_path)
    assert s.cpu() is None and s.cpu() is None


def test_temperature_prefers_the_cpu_zone_then_vcgencmd(tmp_path: Path) -> None:
    thermal = tmp_path / "sys" / "class" / "thermal"
    write(thermal / "thermal_zone0" / "type", "acpitz\n")
    write(thermal / "thermal_zone0" / "temp", "70000\n")
    write(thermal / "thermal_zone1" / "type", "cpu-thermal\n")
    write(thermal / "thermal_zone1" / "temp", "54321\n")
    s, _ = sensors(tmp_path, {"measure_temp": MEASURE_TEMP_SAMPLE})
    reading = s.temperature()
    assert (reading.value, reading.label) == (54.321, "measured:thermal:cpu-thermal")
    # No readable zone: the firmware's own reading.
    (thermal / "thermal_zone0" / "temp").write_text("garbage\n")
    (thermal / "thermal_zone1" / "temp").unlink()
    reading = s.temperature()
    assert (reading.value, reading.label) == (61.3, "measured:vcgencmd")


def test_no_temperature_anywhere_is_unavailable(tmp_path: Path) -> None:
    s, _ = sensors(tmp_path)
    assert s.temperature().value is None and s.temperature().label == "unavailable"


def test_throttled_flags_from_vcgencmd(tmp_path: Path) -> None:
    s, _ = sensors(tmp_path, {"get_throttled": THROTTLED_SAMPLE})
    assert s.throttled() == 0x50005
    none, _ = sensors(tmp_path)
    assert none.throttled() is None


def test_pmic_rails_are_summed_and_corrected(tmp_path: Path) -> None:
    assert pmic_rails_watts(PMIC_SAMPLE) == pytest.approx(PMIC_RAILS_W)
    s, _ = sensors(tmp_path, {"pmic_read_adc": PMIC_SAMPLE})
    reading = s.power(system_pct=50.0)
    assert reading.label == "measured:pmic"
    assert reading.value == pytest.approx(PMIC_RAILS_W * PMIC_GAIN + PMIC_OFFSET, abs=1e-3)


def test_power_falls_back_pmic_hwmon_rapl_model(tmp_path: Path) -> None:
    clock = FakeClock()
    failing = subprocess.CalledProcessError(255, "vcgencmd", "VCHI initialization failed")
    s, runner = sensors(tmp_path, {"pmic_read_adc": failing}, clock=clock)
    hwmon = tmp_path / "sys" / "class" / "hwmon" / "hwmon2"
    write(hwmon / "name", "ina219\n")
    write(hwmon / "power1_input", "4250000\n")  # µW
    assert s.power(10.0).label == "measured:hwmon:ina219"
    assert s.power(10.0).value == pytest.approx(4.25)

    (hwmon / "power1_input").write_text("")  # unreadable value: next sensor
    rapl = tmp_path / "sys" / "class" / "powercap"
    write(rapl / "intel-rapl:0" / "energy_uj", "262143000000\n")
    write(rapl / "intel-rapl:0" / "max_energy_range_uj", "262143328850\n")
    write(rapl / "intel-rapl:0:0" / "energy_uj", "1\n")  # a sub-domain: not counted again
    # RAPL needs two readings; meanwhile the model answers.
    assert s.power(50.0).label == "estimated:model"
    clock.now += 2.0
    write(rapl / "intel-rapl:0" / "energy_uj", "6000000\n")  # wrapped past the range
    reading = s.power(50.0)
    assert reading.label == "measured:rapl"
    assert reading.value == pytest.approx((328850 + 6000000) / 1e6 / 2.0, abs=1e-3)

    for domain in ("intel-rapl:0", "intel-rapl:0:0"):
        (rapl / domain / "energy_uj").unlink()
    idle, full = s.power_model
    reading = s.power(50.0)
    assert reading.label == "estimated:model"
    assert reading.value == pytest.approx(idle + (full - idle) * 0.5)
    # vcgencmd failed once per second at most, however often power was read.
    assert runner.calls.count(["vcgencmd", "pmic_read_adc"]) == 2


def test_missing_vcgencmd_is_never_run_again(tmp_path: Path) -> None:
    clock = FakeClock()
    s, runner = sensors(tmp_path, clock=clock)
    for _ in range(5):
        s.power(20.0)
        s.throttled()
        clock.now += 5
    assert runner.calls == [["vcgencmd", "pmic_read_adc"]]


def test_commands_are_sampled_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    s, runner = sensors(tmp_path, {"pmic_read_adc": PMIC_SAMPLE}, clock=clock)
    for _ in range(10):
        s.power(None)
        clock.now += 0.25
    assert len(runner.calls) == 3  # at 0, 1.0 and 2.0 s


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0\x00", (3.0, 7.2)),
        ("Raspberry Pi 4 Model B Rev 1.4\x00", (2.9, 6.4)),
        ("Some x86 box", (2.9, 6.4)),
    ],
)
def test_power_model_defaults_follow_the_board(tmp_path: Path, model: str, expected) -> None:
    write(tmp_path / "proc" / "device-tree" / "model", model)
    s, _ = sensors(tmp_path)
    assert s.power_model == expected
    custom, _ = sensors(tmp_path, power_model=(1.5, 4.0))
    assert custom.power(100.0).value == pytest.approx(4.0)
