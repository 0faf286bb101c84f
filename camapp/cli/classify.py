"""`camapp classify`: classify image files, as `run` would classify frames."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from camapp.cli.common import image_command, images_and_camera
from camapp.errors import EXIT_OK
from camapp.inference import loader
from camapp.inference.classifier import Classification

MODEL_SETTINGS = {
    "model", "labels", "top_k", "crop", "roi", "backend", "delegate", "input_mean", "input_std"
}  # fmt: skip


def add(sub: argparse._SubParsersAction) -> None:
    image_command(sub, "classify", MODEL_SETTINGS, command, help="classify image files")


def command(args: argparse.Namespace) -> int:
    camera, images = images_and_camera(args)
    setup = loader.plan(
        camera.model, camera.labels, camera.backend, camera.delegate, 1, camera.top_k
    )
    classifier = loader.load(setup)
    crop, roi = loader.view(camera, setup)
    for path, image in images:
        result = classifier.classify(image, True, crop, roi)
        print(line(path, result, args.json))
    return EXIT_OK


def line(path: Path, result: Classification, as_json: bool) -> str:
    """A readable line (labels quoted, since ImageNet's hold commas) or a JSON object."""
    best = result.top_k[0]
    if not as_json:
        others = "; ".join(f"{p.label!r} {p.score:.2f}" for p in result.top_k[1:])
        return f"{path}: {best.label!r} ({best.score:.2f})" + (f"; then {others}" if others else "")
    top = [{"label": p.label, "class_id": p.class_id, "score": p.score} for p in result.top_k]
    record = {
        "image": str(path),
        "label": best.label,
        "class_id": best.class_id,
        "score": best.score,
        "top_k": top,
    }
    return json.dumps(record)
