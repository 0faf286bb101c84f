"""`camapp detect`: find, count and locate objects in image files, as `classify` classifies
them (docs/detection.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from camapp import models
from camapp.cli.common import image_command, images_and_camera
from camapp.errors import EXIT_OK
from camapp.inference import loader
from camapp.inference.detector import DetectionResult

MODEL_SETTINGS = {"model", "labels", "delegate", "roi", "min_score", "min_area", "min_scores"}


def add(sub: argparse._SubParsersAction) -> None:
    image_command(
        sub, "detect", MODEL_SETTINGS, command,
        model_help=f"detector file or known name (default: {models.DEFAULT_DETECTOR})",
        help="find, count and locate objects in image files",
        description=f"Object detection on image files; --model defaults to the detector "
        f"{models.DEFAULT_DETECTOR}.",
    )  # fmt: skip


def command(args: argparse.Namespace) -> int:
    """Every image and the model are checked before the first line is printed."""
    camera, images = images_and_camera(args)
    spec = loader.plan_detector(
        camera.model, camera.labels, camera.delegate, 1, camera.min_score, camera.min_area,
        min_scores=camera.min_scores,
    )  # fmt: skip
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
