"""`camapp dataset`: collect frames of a scene per class, and check a dataset before training."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import cv2

from camapp import training
from camapp.capture import Source, open_source
from camapp.cli.common import EPILOG, Parser
from camapp.cli.progress import Bar
from camapp.config.load import flag_name, validate_part
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_OK, EXIT_USAGE, ConfigError
from camapp.training.frames import Roi

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
    for flag, what in (("--start", "first frame"), ("--end", "frame to stop before")):
        c.add_argument(flag, metavar="N|Ts", help=f"a video's {what}: a number, or seconds (12.5s)")
    c.set_defaults(handler=capture)
    k = actions.add_parser("check", help="images per class, imbalance, broken or duplicate files")
    k.add_argument("dataset", type=Path, metavar="DATASET")
    k.set_defaults(handler=check)


def capture(args: argparse.Namespace) -> int:
    """Save frames of a source; a video file is read as fast as it decodes, its time (and so
    `--every`, `--start`, `--end`) being the video's own, not the clock's."""
    if not 1 <= args.count <= 100_000:
        raise ConfigError(f"--count: must be between 1 and 100000 (got {args.count})")
    if not 0 <= args.every <= 86_400:
        raise ConfigError(f"--every: must be between 0 and 86400 s (got {args.every:g})")
    roi = None
    if args.roi is not None:
        validate_part(CameraSettings, {"roi": args.roi}, "command line", flag_name)
        roi = training.parse_roi(args.roi)
    source = open_source(args.source, realtime=False)
    try:
        span = _span(args, source)
        saved, stop = _save(args, source, span, roi)
    finally:
        source.close()
    where = args.dataset / args.label
    if saved < args.count:
        log.warning("%s: saved %d of the %d frames asked into %s", stop, saved, args.count, where)
    else:
        log.info("saved %d frames of %s into %s", saved, args.label, where)
    return EXIT_OK


def _span(args: argparse.Namespace, source: Source) -> tuple[int, float]:
    """The frame numbers to take, [start, end), from --start and --end."""
    if source.live and (args.start or args.end):
        raise ConfigError("--start and --end take part of a video file, not of a live source")
    start = _frame_number(args.start, "--start", source) or 0
    end = _frame_number(args.end, "--end", source)
    if end is not None and end <= start:
        raise ConfigError(f"--end (frame {end}) must come after --start (frame {start})")
    return start, math.inf if end is None else end


def _frame_number(value: str | None, flag: str, source: Source) -> int | None:
    """Frame number "300" is frame 300 (the first is 0); "12.5s" is the frame 12.5 s in."""
    if value is None:
        return None
    text = value.strip().lower()
    try:
        number = float(text[:-1]) if text.endswith("s") else int(text)
    except ValueError:
        number = -1
    if not 0 <= number < 1e9:
        raise ConfigError(f"{flag}: a frame number (300) or seconds (12.5s), not {value[:40]!r}")
    if not text.endswith("s"):
        return int(number)
    if not source.fps:
        raise ConfigError(f"{flag} {value[:40]}: {source.name} gives no frame rate: use frames")
    return round(number * source.fps)


def _save(
    args: argparse.Namespace, source: Source, span: tuple[int, float], roi: Roi | None
) -> tuple[int, str]:
    """Save up to --count frames of the span, --every apart: how many, and why it stopped
    short if it did."""

    progress = Bar("dataset")
    saved, due, stop = 0, -math.inf, ""
    try:
        while saved < args.count:
            frame = source.read()
            if frame is None or frame.seq >= span[1]:
                ended = "the source ended" if source.live else "the video ended"
                stop = ended if frame is None else f"--end (frame {span[1]}) was reached"
                break
            at = frame.mono if source.live or not source.fps else frame.seq / source.fps
            if frame.seq < span[0] or at < due:
                continue
            image = frame.image if frame.bgr else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
            sidecar = {"camera": source.name, "frame": frame.seq, "roi": roi}
            training.save_frame(args.dataset, args.label, image, sidecar)
            saved, due = saved + 1, at + args.every
            progress(f"saving {args.label}", saved, args.count)
    finally:
        progress.close()
    return saved, stop


def check(args: argparse.Namespace) -> int:
    """Exit 2 when the dataset cannot train a model as it is: the user must fix it."""

    progress = Bar("dataset")
    report = training.check_dataset(args.dataset, progress)
    progress.close()
    print(training.format_check(report))
    return EXIT_OK if report.ok else EXIT_USAGE
