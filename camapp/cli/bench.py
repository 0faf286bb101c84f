"""`camapp bench`: camapp against the bare interpreter and a naive loop, in one run.

The harness lives in `camapp.bench` and loads only for this command; its chart needs the
`bench` extra (`pip install 'camapp[bench]'`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from camapp import models
from camapp.cli.common import EPILOG
from camapp.config.load import flag_name, validate_part
from camapp.config.schema import AppSettings, default_workers
from camapp.errors import EXIT_OK, ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench", help="measure camapp against the bare interpreter and a naive loop", epilog=EPILOG
    )
    b.add_argument("--clip", type=Path, help="video file (default sample_videos/car-detection.mp4)")
    b.add_argument("--model", help=f"model file or known name (default {models.DEFAULT_MODEL})")
    b.add_argument("--workers", type=int, help="camapp workers (default: one per core, at most 4)")
    b.add_argument("--threads-per-worker", type=int, default=1, help="default 1")
    b.add_argument("--duration", type=float, default=10.0, help="seconds of camapp at full speed")
    b.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="measure the full-speed rows N times and report medians (default 3, 1 with --quick)",
    )
    b.add_argument("--quick", action="store_true", help="a few seconds in all: a smoke test")
    b.add_argument(
        "--soak", type=float, metavar="S", help="run at real-time pace for S s (RSS growth)"
    )
    b.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="report directory")
    b.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    try:
        from camapp.bench import harness
    except ImportError as exc:
        raise ConfigError(
            f"camapp bench needs its extra ({exc.name} is missing): pip install 'camapp[bench]'"
        ) from None
    workers = default_workers() if args.workers is None else args.workers
    # The same bounds as `camapp run`'s settings, declared once.
    checks = {"workers": workers, "threads_per_worker": args.threads_per_worker}
    validate_part(AppSettings, checks | {"duration": args.duration}, "command line", flag_name)
    if args.soak is not None:
        validate_part(AppSettings, {"duration": args.soak}, "command line", lambda _: "--soak")
    if args.rounds is not None and not 1 <= args.rounds <= 20:
        raise ConfigError(f"--rounds: must be between 1 and 20 (got {args.rounds})")
    plan = harness.Plan(
        clip=args.clip or harness.default_clip(),
        model=args.model,
        workers=workers,
        threads=args.threads_per_worker,
        cores=os.cpu_count() or 1,
        run_s=args.duration,
    )
    if args.quick:
        plan = harness.quick(plan)
    if args.rounds is not None:
        plan.rounds = args.rounds
    if args.soak:
        plan.realtime_s = args.soak
        plan.warmup_s = min(60.0, args.soak / 10)
    report = harness.run(plan, args.out)
    print(harness.markdown(report), end="")
    return EXIT_OK
