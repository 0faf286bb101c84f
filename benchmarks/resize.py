"""The cost of camapp's own bilinear resize (camapp.resize, issue 20) against cv2.resize's
INTER_LINEAR and INTER_LINEAR_EXACT (OpenCV's bit-exact one), in one run, on the sizes the
preprocessor and the detectors resize: the car clip's 432x432 centre crop and a 512x512
photo crop after its 2x box filter (256x256) to 224, its 768x432 frame to YOLO's 640x360
letterbox and to the SSD's 300x300. All three run alternately, `--rounds` times each;
process CPU time (OpenCV's threads count), the median round. Also whether this machine's
cv2 gives the same bytes (then camapp takes it: `Resizer.opencv`).

    .venv/bin/python benchmarks/resize.py [--rounds 7] [--frames 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from camapp.resize import Resizer, opencv_agrees

CASES = [((432, 432), (224, 224)), ((256, 256), (224, 224)), ((432, 768), (640, 360))]
CASES += [((432, 768), (300, 300))]


def cpu_ms(step: Callable[[], object], frames: int) -> float:
    """Process CPU ms per call over `frames` calls."""
    began = time.process_time()
    for _ in range(frames):
        step()
    return (time.process_time() - began) * 1000 / frames


def case(shape: tuple[int, int], size: tuple[int, int], rounds: int, frames: int) -> str:
    """One table row: the median round of each side, and their ratio."""
    src = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = np.empty((size[1], size[0], 3), np.uint8)
    mine = Resizer(src.shape, size, opencv=False)
    exact = cv2.INTER_LINEAR_EXACT
    linear, bit_exact, ours = [], [], []
    for _ in range(rounds):
        linear.append(cpu_ms(lambda: cv2.resize(src, size, dst=out), frames))
        bit_exact.append(
            cpu_ms(lambda: cv2.resize(src, size, dst=out, interpolation=exact), frames)
        )
        ours.append(cpu_ms(lambda: mine(src, out), frames))
    a, e, b = (statistics.median(times) for times in (linear, bit_exact, ours))
    return (
        f"| {shape[1]}x{shape[0]} → {size[0]}x{size[1]} | {a:.3f} ms | {e:.3f} ms ({e / a:.1f}x) "
        f"| {b:.3f} ms ({b / a:.1f}x) | {opencv_agrees(src.shape, size)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}, {args.rounds} rounds")
    head = "| source → model input | cv2 INTER_LINEAR | cv2 INTER_LINEAR_EXACT | camapp numpy |"
    print(f"{head} cv2 same bytes |\n|---|---|---|---|---|")
    for shape, size in CASES:
        print(case(shape, size, args.rounds, args.frames))


if __name__ == "__main__":
    main()
