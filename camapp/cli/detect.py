"""`camapp detect`: find, count and locate objects in image files, as `classify` classifies
them (docs/detection.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from camapp import models
from camapp.capture.imagefile import read_image
from camapp.cli.common import EPILOG, run_config
from camapp.config import flags
from camapp.errors import EXIT_OK
from camapp.inference import loader
from camapp.inference.detector import DetectionResult

MODEL_SETTINGS = {"model", "labels", "delegate", "roi", "min_score", "min_area"}


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="find, count and locate objects in image files",
        description=f"Object detection on image files; --model defaults to the detector "
        f"{models.DEFAULT_DETECTOR}.",
        epilog=EPILOG,
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    flags.add_flags(p, only=MODEL_SETTINGS)
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Every image and the model are checked before the first line is printed."""
    [camera] = run_config(args).cameras
    images = [(path, read_image(path)) for path in args.images]
    spec = loader.plan_detector(
        camera.model, camera.labels, camera.delegate, 1, camera.min_score, camera.min_area
    )
    detector = loader.load_detector(spec)
    for path, image in images:
        print(line(path, detector.detect(image, True, camera.roi), args.json))
    return EXIT_OK


def line(path: Path, result: DetectionResult, as_json: bool) -> str:
    """A readable line (counts, then each object) or a JSON object."""
    if as_json:
        objects = [{"label": o.label, "score": o.score, "box": list(o.box)} for o in result.objects]
        return json.dumps({"image": str(path), "objects": objects, "counts": result.counts})
    if not result.objects:
        return f"{path}: nothing found"
    counts = ", ".join(f"{n} {label!r}" for label, n in result.counts.items())
    found = "; ".join(
        f"{o.label!r} {o.score:.2f} at {', '.join(f'{v:.3f}' for v in o.box)}"
        for o in result.objects
    )
    return f"{path}: {counts}: {found}"
