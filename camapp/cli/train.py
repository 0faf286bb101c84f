"""`camapp train`: a model of your own classes, int8, from a dataset or from a teacher model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from camapp import models
from camapp.cli.common import EPILOG
from camapp.cli.progress import Bar
from camapp.config.load import flag_name, validate_part
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_OK, ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train your own classes (a dataset), or distil a teacher model on your scene",
        epilog=EPILOG,
    )
    t.add_argument("dataset", type=Path, nargs="?", metavar="DATASET", help="DATASET/<label>/")
    t.add_argument("--out", type=Path, required=True, help="the model to write (.tflite)")
    t.add_argument(
        "--base", help=f"base model, a file or known name (default {models.DEFAULT_MODEL})"
    )
    t.add_argument("--val-fraction", type=float, default=0.2, help="held out per class (0.2)")
    t.add_argument("--val", type=Path, help="a separate validation DATASET instead")
    t.add_argument("--crop", choices=("center", "stretch"), default="center")
    t.add_argument("--roi", help="region of interest x1,y1,x2,y2 (fractions of the frame)")
    t.add_argument("--augment", type=int, default=1, help="augmented copies per image (1)")
    d = t.add_argument_group("distillation (no labels: a teacher labels your own frames)")
    d.add_argument("--teacher", help="the model to mimic, a file or known name")
    d.add_argument("--frames", type=Path, help="a video of your scene")
    t.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    from camapp import training  # loads LiteRT's schema tools: only for this command

    roi = None
    if args.roi is not None:
        validate_part(CameraSettings, {"roi": args.roi}, "command line", flag_name)
        roi = training.parse_roi(args.roi)
    progress = Bar("train")
    if args.teacher:
        report = _distill(args, roi, progress)
    else:
        if args.dataset is None:
            raise ConfigError("pass a DATASET to train on, or --teacher and --frames to distil")
        settings = training.TrainSettings(
            base=args.base or models.DEFAULT_MODEL, val_fraction=args.val_fraction,
            val_dir=args.val, crop=args.crop, roi=roi, augment=args.augment,
        )  # fmt: skip
        report = training.train(args.dataset, args.out, settings, progress)
    progress.close()
    print(_summary(report))
    return EXIT_OK


def _distill(args: argparse.Namespace, roi: Any, progress: Bar) -> dict[str, Any]:
    from camapp import training

    if args.frames is None or args.base is None:
        raise ConfigError("distillation needs --frames VIDEO and a smaller --base model")
    # The teacher's classes that top at least 2% of the frames are kept (the rest: "other").
    settings = training.DistillSettings(crop=args.crop, roi=roi)
    return training.distill(args.frames, args.out, args.teacher, args.base, settings, progress)


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
