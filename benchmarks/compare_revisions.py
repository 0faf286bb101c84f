"""What each optimisation bought: `camapp run` of several git revisions, measured alike.

Each revision is exported (git archive) and run by `camapp bench`'s own measurement, through
a private mosquitto, round-robin so that a burst of load elsewhere on the machine hits every
revision alike. CPU per classification is the figure to trust on a shared machine;
classifications/s is also given, with the cores other processes took meanwhile.

    python benchmarks/compare_revisions.py 6602be4 587a8df HEAD [--rounds 3] [--seconds 8]
        [--memory] [--realtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from camapp import models
from camapp.bench.broker import Broker
from camapp.bench.harness import Plan, Row, default_clip, run_camapp, say
from camapp.config.schema import default_workers

REPO = Path(__file__).resolve().parents[1]


def export(revision: str, into: Path) -> Path:
    """The package as it was at `revision`, importable from the returned directory."""
    tree = into / revision
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "camapp", "models/manifest.toml"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--realtime", action="store_true", help="at the clip's pace (latency)")
    parser.add_argument(
        "--memory", action="store_true", help="frames held in memory (Pi-like), not decoded"
    )
    args = parser.parse_args()
    plan = Plan(default_clip(), None, default_workers(), 1, os.cpu_count() or 1, warmup_s=1.0)
    model = models.resolve_model(None)
    # The exported trees have no models/ of their own: they use this checkout's.
    os.environ["CAMAPP_MODEL_DIR"] = str(model.parent)
    rows: dict[str, list[Row]] = {r: [] for r in args.revisions}
    source = f"memory:{plan.clip}" if args.memory else None
    with tempfile.TemporaryDirectory(prefix="camapp-compare-") as tmp:
        trees = {r: export(r, Path(tmp)) for r in args.revisions}
        broker = Broker(Path(tmp)).start()
        try:
            for round_ in range(1, args.rounds + 1):
                for revision, tree in trees.items():
                    say(f"round {round_}/{args.rounds}: {revision}")
                    # `python -m` imports from the working directory first.
                    os.chdir(tree)
                    row = run_camapp(
                        revision, plan, model, broker, args.realtime, args.seconds, source
                    )[0]
                    rows[revision].append(row)
        finally:
            os.chdir(REPO)
            broker.stop()
    print("| revision | CPU ms/classification | classifications/s | p50 ms | p99 ms |"
          " other processes, cores |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for revision, measured in rows.items():

        def med(values: list[float]) -> float:
            return statistics.median(values)

        print(
            f"| {revision} | {med([r.cpu_ms for r in measured]):.3f}"
            f" | {med([r.rate for r in measured]):.1f}"
            f" | {med([r.p50 or 0 for r in measured]):.1f}"
            f" | {med([r.p99 or 0 for r in measured]):.1f}"
            f" | {med([r.load.other_cores if r.load else 0 for r in measured]):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
