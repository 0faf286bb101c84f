"""Does the governor hold a CPU budget, and does more budget buy more classifications?

Replays a real clip (`--loop --no-realtime`, the hardest case: the source never waits) at CPU
budgets of 25, 50 and 100 %, then at 50 % with a CPU hog (one busy process per core, bounded,
stopping on its own) started mid-run. camapp's CPU is measured from outside (psutil, every
0.5 s); its `stats` and classifications are read from a private mosquitto. Reports, for every
5 s window after a 3 s settle, camapp's CPU against its budget (target: never above budget + 5
points), and the classifications per second; writes a Markdown table and a PNG chart of CPU,
stride and source fps limit over time to benchmarks/results/.

    .venv/bin/python benchmarks/governor.py [--duration 30] [--clip PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.mqtt_helpers import Broker, Subscriber  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SETTLE_S, WINDOW_S, SAMPLE_S = 3.0, 5.0, 0.5
TOLERANCE = 5.0  # points above the budget a window may reach

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@dataclass
class Run:
    name: str
    budget: float
    hog_at: float | None = None  # s after start
    hog_for: float = 0.0
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (t, % of machine)
    stats: list[tuple[float, dict]] = field(default_factory=list)
    classified: list[float] = field(default_factory=list)  # arrival times
    windows: list[tuple[float, float, float]] = field(default_factory=list)  # (start, cpu, cls/s)


def run_one(run: Run, clip: Path, duration: float, broker: Broker) -> None:
    camera = f"bench{int(run.budget)}{'hog' if run.hog_at else ''}"
    sub = Subscriber(broker.port, [f"camapp/{camera}/#"])
    cmd = [
        *(sys.executable, "-m", "camapp", "run", "--source", str(clip), "--loop", "--no-realtime"),
        *("--cpu-budget", str(run.budget), "--stats-interval", "1", "--camera-id", camera),
        *("--mqtt-port", str(broker.port), "--duration", str(duration)),
    ]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = threading.Thread(target=lambda: setattr(run, "log", proc.stderr.read().decode()))
    log.start()
    child, cores = psutil.Process(proc.pid), psutil.cpu_count()
    hogs: list[subprocess.Popen] = []
    prev_t, prev_cpu = time.monotonic(), 0.0
    while proc.poll() is None:
        time.sleep(SAMPLE_S)
        now = time.monotonic()
        if run.hog_at is not None and not hogs and now - start >= run.hog_at:
            code = HOG.format(seconds=run.hog_for)
            hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(cores)]
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            break
        used = times.user + times.system
        run.cpu.append((now - start, 100 * (used - prev_cpu) / (now - prev_t) / cores))
        prev_t, prev_cpu = now, used
    proc.wait()
    log.join()
    for hog in hogs:
        hog.wait()
    for message in sub.messages:
        # paho stamps each message with time.monotonic() on arrival.
        t = message.timestamp - start
        if message.topic.endswith("/stats"):
            run.stats.append((t, json.loads(message.payload)))
        elif message.topic.endswith("/classification"):
            run.classified.append(t)
    sub.close()
    windows(run, duration)


def windows(run: Run, duration: float) -> None:
    """camapp's CPU and classifications/s over each full 5 s window after the settle."""
    t = SETTLE_S
    while t + WINDOW_S <= duration:
        samples = [c for s, c in run.cpu if t < s <= t + WINDOW_S]
        done = sum(1 for s in run.classified if t < s <= t + WINDOW_S)
        if samples:
            run.windows.append((t, sum(samples) / len(samples), done / WINDOW_S))
        t += WINDOW_S


def mean_rate(run: Run) -> float:
    return sum(r for _, _, r in run.windows) / len(run.windows)


def table(runs: list[Run]) -> str:
    lines = [
        "| run | budget % | windows | worst window CPU % | mean CPU % | classifications/s | "
        f"within budget + {TOLERANCE:g} |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        cpus = [c for _, c, _ in run.windows]
        rate = mean_rate(run)
        ok = all(c <= run.budget + TOLERANCE for c in cpus)
        lines.append(
            f"| {run.name} | {run.budget:g} | {len(cpus)} | {max(cpus):.1f} | "
            f"{sum(cpus) / len(cpus):.1f} | {rate:.1f} | {'yes' if ok else 'NO'} |"
        )
    rates = [mean_rate(run) for run in runs if run.hog_at is None]
    more = all(a < b for a, b in itertools.pairwise(rates))
    lines += ["", f"More budget, more classifications: {'yes' if more else 'NO'}."]
    lines += ["", "Per window (start s: CPU % / classifications/s):", ""]
    for run in runs:
        cells = ", ".join(f"{t:g}: {c:.1f} / {r:.1f}" for t, c, r in run.windows)
        lines.append(f"- {run.name}: {cells}")
    return "\n".join(lines) + "\n"


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3 * len(runs)), sharex=True)
    for ax, run in zip(axes, runs, strict=True):
        ax.plot(*zip(*run.cpu, strict=True), label="camapp CPU % (psutil)", color="tab:blue")
        ax.axhline(run.budget, color="tab:red", linestyle="--", label="budget")
        ax.axhline(run.budget + TOLERANCE, color="tab:red", linestyle=":", linewidth=0.8)
        if run.hog_at is not None:
            ax.axvspan(run.hog_at, run.hog_at + run.hog_for, color="grey", alpha=0.2, label="hog")
        ax.set_ylabel("CPU % of machine")
        ax.set_ylim(0, 105)
        ax.set_title(run.name)
        knobs = ax.twinx()
        ts = [t for t, _ in run.stats]
        knobs.step(ts, [s["stride"] for _, s in run.stats], where="post", color="tab:green")
        limits = [s["fps_limit"] or float("nan") for _, s in run.stats]
        knobs.step(ts, limits, where="post", color="tab:orange")
        workers = [s["workers"] for _, s in run.stats]
        knobs.step(ts, workers, where="post", color="tab:purple", linestyle="--")
        knobs.set_ylabel("stride (green), workers (purple),\nsource fps limit (orange)")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--clip", type=Path, default=REPO.parent / "shared/media/car-detection.mp4")
    args = parser.parse_args()
    if not args.clip.is_file():
        parser.exit(2, f"governor benchmark: error: no clip at {args.clip}\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    third = args.duration / 3
    runs = [
        Run("budget 25", 25),
        Run("budget 50", 50),
        Run("budget 100", 100),
        Run("budget 50, CPU hog mid-run", 50, hog_at=third, hog_for=third),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        try:
            for run in runs:
                print(f"{run.name}: {args.duration:g} s ...", file=sys.stderr, flush=True)
                run_one(run, args.clip, args.duration, broker)
        finally:
            broker.stop()
    report = table(runs)
    (RESULTS / "governor.md").write_text(report)
    chart(runs, RESULTS / "governor.png")
    print(report)
    print(f"chart: {RESULTS / 'governor.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
