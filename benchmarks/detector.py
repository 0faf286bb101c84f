"""What camapp adds to a detector's own invoke (docs/benchmarks.md).

Default: per frame, the whole `Detector.detect()` (cut the region, letterbox or resize,
channel order and quantization into the input, invoke, decode and NMS, boxes back to the
frame) against the invoke alone, on the same frames: every 35th frame of the person clip
(768x432, BGR as capture gives them) and Grace Hopper. One interpreter thread.

`--pipeline`: frames/s of the whole pipeline against the bare interpreters on the same cores,
in one run, round after round: the bare limit (2 interpreters on 2 threads, one interpreter
thread each, invoking on ready inputs: the person clip's frames as the memory source holds
them, prepared by camapp's own Detector) and then `camapp run` on those frames in memory
(`memory:` source: capture hand-off, queue, 2 workers, decode and NMS, reorder, tracker,
JSON, MQTT to a private mosquitto, counted by a subscriber on `objects`), for each detector.

`--rss`: peak RSS (VmHWM) of one `camapp run` process with a detector camera and a
classifier camera (MobileNetV2 int8) on the person clip at its own pace.

    .venv/bin/python benchmarks/detector.py [--rounds 3] [--pipeline [--seconds 8]] [--rss]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import INT8, MEDIA
from two_cameras import run as run_config

from camapp.bench.broker import Broker
from camapp.bench.harness import Plan, bare_limit, run_camapp, say
from camapp.capture.memory import MemorySource
from camapp.inference import loader
from camapp.training.clip import clip_frames
from tests.detect_helpers import CLIP, SSD, YOLO

DETECTORS = (("SSD MobileNet V1", SSD, 0.4), ("YOLOv8n", YOLO, 0.3))


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


def model_inputs(model: Path, score: float, count: int) -> list[np.ndarray]:
    """What the bare interpreters run on: the frames the memory source holds for this model
    (as `camapp run` gets them), prepared by camapp's own Detector."""
    detector = loader.load_detector(loader.plan_detector(str(model), min_score=score))
    source = MemorySource(str(CLIP), max(detector.size))
    inputs = []
    while len(inputs) < count and (frame := source.read()) is not None:
        detector.prepare(frame.image, frame.bgr)
        inputs.append(detector.input.copy())
    return inputs


def pipeline(rounds: int, seconds: float) -> None:
    """Per detector and round: the bare limit, then camapp on frames in memory, back to back.
    Beside the frames/s, the same ratio from CPU time (bare CPU per invoke / camapp CPU per
    frame: what the cores would give each with the machine to itself), which a machine shared
    with other work does not disturb as it does the wall-clock rates."""
    plan = Plan(clip=CLIP, model=None, workers=2, threads=1, cores=os.cpu_count() or 1)
    print(f"{plan.workers} workers x {plan.threads} thread, {seconds:g} s a row, load "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| detector | round | bare 2x1 frames/s | camapp frames/s | camapp / bare | "
          "camapp CPU ms/frame | bare CPU ms/invoke | bare / camapp CPU |\n"
          "|---|---|---|---|---|---|---|---|")  # fmt: skip
    medians = []
    with tempfile.TemporaryDirectory(prefix="camapp-detector-") as tmp:
        broker = Broker(Path(tmp)).start()
        try:
            for name, model, score in DETECTORS:
                inputs = model_inputs(model, score, 50)
                ratios = []
                for round_ in range(1, rounds + 1):
                    say(f"{name}, round {round_}")
                    bare = bare_limit(model, inputs, plan.workers, plan.threads, seconds)
                    row, _, _ = run_camapp(name, plan, model, broker, False, seconds,
                                           f"memory:{CLIP}", topic="objects")  # fmt: skip
                    ratios.append((row.rate / bare.rate, bare.cpu_ms / row.cpu_ms))
                    print(f"| {name} | {round_} | {bare.rate:.1f} | {row.rate:.1f} | "
                          f"{ratios[-1][0]:.3f} | {row.cpu_ms:.2f} | {bare.cpu_ms:.2f} | "
                          f"{ratios[-1][1]:.3f} |", flush=True)  # fmt: skip
                medians.append((name, *map(statistics.median, zip(*ratios, strict=True))))
        finally:
            broker.stop()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    for name, rate, cpu in medians:
        print(f"{name}: median camapp / bare {rate:.3f} by frames/s, {cpu:.3f} by CPU")


def peak_rss(seconds: float) -> None:
    """One process, a detector camera and a classifier camera on the person clip at its
    own pace, for each detector: the peak RSS the kernel recorded (VmHWM), sampled to the end."""
    print("| cameras in one process | peak RSS MB |\n|---|---|")
    with tempfile.TemporaryDirectory(prefix="camapp-rss-") as tmp:
        broker = Broker(Path(tmp)).start()
        try:
            for name, model, _ in DETECTORS:
                config = Path(tmp) / "two.toml"
                config.write_text(
                    f"[mqtt]\nport = {broker.port}\n"
                    f'[[cameras]]\ncamera_id = "door"\nsource = "{CLIP}"\nmodel = "{INT8}"\n'
                    f'[[cameras]]\ncamera_id = "yard"\nsource = "{CLIP}"\nmodel = "{model}"\n'
                )
                code, peak = run_config(config, seconds)  # peak: VmHWM, sampled to the end
                if code != 0:
                    raise SystemExit(f"camapp run failed: exit {code}")
                print(f"| {name} + MobileNetV2 int8 classifier | {peak:.0f} |", flush=True)
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="detects of each frame; rounds")
    parser.add_argument("--pipeline", action="store_true", help="camapp against bare, frames/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="each --pipeline row")
    parser.add_argument("--rss", action="store_true", help="peak RSS, detector + classifier")
    args = parser.parse_args()
    if args.pipeline:
        pipeline(args.rounds, args.seconds)
    if args.rss:
        peak_rss(max(args.seconds, 20.0))
    if args.pipeline or args.rss:
        return
    images = frames()
    print(f"{len(images)} frames, 1 thread\n")
    head = "detector | min score | objects a frame | detect(), ms | invoke, ms | rest, ms"
    print(f"| {head} | invoke / detect |\n|---|---|---|---|---|---|---|")
    print(row("SSD MobileNet V1", SSD, 0.4, images, args.rounds), flush=True)
    print(row("YOLOv8n", YOLO, 0.3, images, args.rounds), flush=True)


if __name__ == "__main__":
    main()
