"""`camapp dataset`: collect frames of a scene per class, and check a dataset before training."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2

from camapp import training
from camapp.capture import open_source
from camapp.cli.common import EPILOG, Parser
from camapp.cli.progress import Bar
from camapp.config.load import flag_name, validate_part
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_OK, EXIT_USAGE, ConfigError

log = logging.getLogger("camapp")


def add(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("dataset", help="collect and check training images", epilog=EPILOG)
    actions = d.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    c = actions.add_parser("capture", help="save frames of a source into DATASET/LABEL/")
    c.add_argument("dataset", type=Path, metavar="DATASET")
    c.add_argument("--source", required=True, help="picamera, usb:N, rtsp://..., or a video")
    c.add_argument("--label", required=True, help="the class these frames show")
    c.add_argument("--count", type=int, default=20, help="frames to save (default 20)")
    c.add_argument("--every", type=float, default=1.0, metavar="S", help="seconds apart (1)")
    c.add_argument("--roi", help="region of interest x1,y1,x2,y2, recorded with each frame")
    c.set_defaults(handler=capture)
    k = actions.add_parser("check", help="images per class, imbalance, broken or duplicate files")
    k.add_argument("dataset", type=Path, metavar="DATASET")
    k.set_defaults(handler=check)


def capture(args: argparse.Namespace) -> int:

    if not 1 <= args.count <= 100_000:
        raise ConfigError(f"--count: must be between 1 and 100000 (got {args.count})")
    if not 0 <= args.every <= 86_400:
        raise ConfigError(f"--every: must be between 0 and 86400 s (got {args.every:g})")
    roi = None
    if args.roi is not None:
        validate_part(CameraSettings, {"roi": args.roi}, "command line", flag_name)
        roi = training.parse_roi(args.roi)
    source = open_source(args.source, realtime=True)
    progress = Bar("dataset")
    saved, due = 0, 0.0
    try:
        while saved < args.count and (frame := source.read()) is not None:
            if frame.mono < due:
                continue
            image = frame.image if frame.bgr else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
            sidecar = {"camera": source.name, "frame": frame.seq, "roi": roi}
            training.save_frame(args.dataset, args.label, image, sidecar)
            saved, due = saved + 1, frame.mono + args.every
            progress(f"saving {args.label}", saved, args.count)
    finally:
        source.close()
        progress.close()
    log.info("saved %d frames of %s into %s", saved, args.label, args.dataset / args.label)
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    """Exit 2 when the dataset cannot train a model as it is: the user must fix it."""

    progress = Bar("dataset")
    report = training.check_dataset(args.dataset, progress)
    progress.close()
    print(training.format_check(report))
    return EXIT_OK if report.ok else EXIT_USAGE
