"""What `camapp.inference.detector.Detector` adds to a detector's own invoke
(docs/benchmarks.md): per frame, the whole `detect()` (cut the region, letterbox or resize,
channel order and quantization into the input, invoke, decode and NMS, boxes back to the
frame) against the invoke alone, on the same frames: every 35th frame of the person clip
(768x432, BGR as capture gives them) and Grace Hopper. One interpreter thread.

    .venv/bin/python benchmarks/detector.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import MEDIA

from camapp.inference import loader
from camapp.training.clip import clip_frames
from tests.detect_helpers import CLIP, SSD, YOLO


def frames() -> list[np.ndarray]:
    """BGR: every 35th frame of the person clip, and Grace Hopper."""
    photo = cv2.imread(str(MEDIA / "grace_hopper.bmp"))
    return [frame for _, frame in clip_frames(CLIP, stride=35)] + [photo]


def row(name: str, model: Path, score: float, images: list[np.ndarray], rounds: int) -> str:
    """Median over the frames of each frame's best of `rounds`: detect() and its invoke."""
    detector = loader.load_detector(loader.plan_detector(str(model), min_score=score))
    totals, invokes, found = [], [], 0
    for image in images:
        best = (float("inf"), float("inf"))
        for _ in range(rounds):
            began = time.perf_counter()
            result = detector.detect(image, bgr=True)
            total = (time.perf_counter() - began) * 1000
            best = min(best, (total, result.inference_ms))
        totals.append(best[0])
        invokes.append(best[1])
        found += len(result.objects)
    total, invoke = statistics.median(totals), statistics.median(invokes)
    return (
        f"| {name} | {score} | {found / len(images):.1f} | {total:.2f} | {invoke:.2f} | "
        f"{total - invoke:.2f} | {invoke / total:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="detects of each frame")
    args = parser.parse_args()
    images = frames()
    print(f"{len(images)} frames, 1 thread\n")
    head = "detector | min score | objects a frame | detect(), ms | invoke, ms | rest, ms"
    print(f"| {head} | invoke / detect |\n|---|---|---|---|---|---|---|")
    print(row("SSD MobileNet V1", SSD, 0.4, images, args.rounds), flush=True)
    print(row("YOLOv8n", YOLO, 0.3, images, args.rounds), flush=True)


if __name__ == "__main__":
    main()
