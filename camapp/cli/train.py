"""`camapp train`: a model of your own classes, int8, from a dataset or from a teacher model.

Its settings are declared once (config/training.py): the flags, their help and their
one-line errors are derived from them, as `camapp run`'s are from config/schema.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from camapp import training
from camapp.cli.common import EPILOG
from camapp.cli.progress import Bar
from camapp.config.flags import add_flags, values
from camapp.config.load import check, flag_name
from camapp.config.training import DistillSettings, TrainSettings
from camapp.errors import EXIT_OK, ConfigError
from camapp.tflite.modelfile import writable


def add(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train your own classes (a dataset), or distil a teacher model on your scene",
        epilog=EPILOG,
    )
    t.add_argument("dataset", type=Path, nargs="?", metavar="DATASET", help="DATASET/<label>/")
    t.add_argument("--out", type=Path, required=True, help="the model to write (.tflite)")
    add_flags(t, model=TrainSettings)
    d = t.add_argument_group("distillation (no labels: a teacher labels your own frames)")
    d.add_argument("--teacher", help="the model to mimic, a file or known name")
    d.add_argument("--frames", type=Path, help="a video of your scene")
    add_flags(d, model=DistillSettings, skip=set(TrainSettings.model_fields))
    t.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    writable(args.out)  # before minutes of embedding, not after
    if args.teacher:
        settings = check(DistillSettings, values(args, DistillSettings), "command line", flag_name)
        progress = Bar("train")
        report = _distill(args, settings, progress)
    else:
        settings = check(TrainSettings, values(args, TrainSettings), "command line", flag_name)
        if args.dataset is None:
            raise ConfigError("pass a DATASET to train on, or --teacher and --frames to distil")
        progress = Bar("train")
        report = training.train(args.dataset, args.out, settings, progress)
    progress.close()
    print(_summary(report))
    return EXIT_OK


def _distill(args: argparse.Namespace, settings: DistillSettings, progress: Bar) -> dict[str, Any]:
    base = values(args, TrainSettings).get("base")
    if args.frames is None or base is None:
        raise ConfigError("distillation needs --frames VIDEO and a smaller --base model")
    # The teacher's classes that top at least --min-share of the frames are kept.
    return training.distill(args.frames, args.out, args.teacher, base, settings, progress)


def _summary(report: dict[str, Any]) -> str:
    """The headline figures; the whole report (per class, confusion, the validation images it
    got wrong) is in MODEL.report.md beside the model."""
    if "agreement_after" in report:  # distilled
        before = report["agreement_before"]
        lines = [
            f"agreement with the teacher on held-out frames: {_pct(before)} before,"
            f" {_pct(report['agreement_after'])} after",
            f"speed-up over the teacher: {report['speedup']:.1f}x",
        ]
        seconds = report["seconds"]
    else:
        wrong = len(report.get("wrong") or [])
        lines = [
            f"accuracy: train {_pct(report['train'].get('accuracy'))},"
            f" validation {_pct(report['val'].get('accuracy'))} ({wrong} wrong: see the report)",
            f"int8 model agrees with the float head on {_pct(report['int8_agreement'])}",
        ]
        if skipped := report["images"]["unreadable"]:
            lines.append(f"{len(skipped)} unreadable image(s) skipped: see the report")
        seconds = report["seconds"]["total"]
    lines.append(f"{report['model']}: {report['model_bytes'] / 2**20:.1f} MiB in {seconds:.1f} s")
    lines.append(f"report: {report.get('report')}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
