"""What camapp.detect costs per frame, beside the detector's own invoke (docs/benchmarks.md).

1. Decode: YOLOv8n's real int8 outputs [1, 84, 8400] on frames of the person clip (every
   35th: the empty room and one person) and on Grace Hopper, decoded (candidates picked on
   the quantized scores, per-class NMS) as exported, transposed [1, 8400, 84], and
   dequantized to float32; at the score threshold 0.25 and at 0.05, where far more
   candidates reach the suppression. The SSD's PostProcess outputs beside them. Per frame:
   the median over the frames of each frame's best of `--repeat` rounds.
2. Tracker: one `update` (matching, zones, stillness, events) with 1, 5 and 20 objects
   walking through two zones, median ms per frame.
3. With `--occupancy STRIDE`: both detectors through the person clip (every STRIDE-th
   frame), person counts raw, tracked and debounced against the truth (tests/detect_helpers).

    .venv/bin/python benchmarks/detect_decode.py [--repeat 200] [--occupancy 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import MEDIA

from camapp.detect.decode import Decoder, Output, dequantize
from camapp.detect.track import Tracker
from camapp.detect.zones import CountDebouncer, parse_zones
from camapp.training.clip import clip_frames
from tests.detect_helpers import CLIP, Detector, occupancy, outputs_of, ssd, yolo


def frames() -> list[np.ndarray]:
    """RGB: every 35th frame of the person clip, and Grace Hopper."""
    photo = cv2.imread(str(MEDIA / "grace_hopper.bmp"))
    picked = [frame for _, frame in clip_frames(CLIP, stride=35)] + [photo]
    return [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in picked]


def per_frame_ms(decode: Callable[[list[np.ndarray]], object], outputs, repeat: int) -> float:
    """Median over the frames of the best of `repeat` decodes of each, in ms."""
    best = [min(timeit.repeat(lambda o=o: decode(o), number=1, repeat=repeat)) for o in outputs]
    return statistics.median(best) * 1000


def row(name: str, decoder: Decoder, outputs: list[list[np.ndarray]], repeat: int) -> str:
    found = statistics.mean(len(decoder(o)) for o in outputs)
    ms = per_frame_ms(decoder, outputs, repeat)
    return f"| {name} | {decoder.threshold} | {found:.1f} | {ms:.3f} |"


def decode_rows(detector: Detector, images: list[np.ndarray], repeat: int) -> list[str]:
    """The detector's own outputs decoded; for the raw family also transposed and float."""
    raw = [[t.copy() for t in detector.raw(image)[0]] for image in images]
    signature = outputs_of(detector.interpreter)
    family = detector.decoder.layout.family
    rows = []
    for threshold in (0.25, 0.05):
        rows.append(
            row(f"{family} as exported", Decoder(signature, detector.size, threshold), raw, repeat)
        )
        if family != "raw":
            continue
        (out,) = signature
        flipped = Output(out.name, (1, *out.shape[:0:-1]), out.dtype, out.scale, out.zero_point)
        transposed = [[np.ascontiguousarray(o[0].transpose(0, 2, 1))] for o in raw]
        rows.append(
            row("raw transposed", Decoder([flipped], detector.size, threshold), transposed, repeat)
        )
        plain = Output(out.name, out.shape, "float32")
        floats = [[dequantize(o[0], out.scale, out.zero_point)] for o in raw]
        rows.append(row("raw float32", Decoder([plain], detector.size, threshold), floats, repeat))
    return rows


def tracker_ms(objects: int, frames: int = 300) -> float:
    """Median ms of one update with `objects` people walking across two zones."""
    zones = parse_zones(
        [
            ("left", [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]),
            ("right", [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]),
        ]
    )
    tracker = Tracker(zones=zones)
    rng = np.random.default_rng(1)
    start = rng.uniform(0, 0.8, (objects, 2))
    times = []
    for n in range(frames):
        x = (start[:, 0] + n * 0.002) % 0.8
        boxes = np.stack([x, start[:, 1] * 0.5, x + 0.05, start[:, 1] * 0.5 + 0.4], axis=1)
        scores = rng.uniform(0.5, 0.9, objects)
        began = timeit.default_timer()
        tracker.update(n, n / 10, boxes, scores, ["person"] * objects)
        times.append(timeit.default_timer() - began)
    return statistics.median(times) * 1000


def occupancy_rows(stride: int) -> Iterator[str]:
    """One row per detector, as each is done (a minute or two each)."""
    for name, detector in (("SSD MobileNet V1", ssd()), ("YOLOv8n", yolo())):
        share, tracks = occupancy(detector, stride, Tracker(), CountDebouncer(2))
        keys = ("raw", "plain", "tracked", "debounced")
        cells = " | ".join(f"{share[k] * 100:.2f} %" for k in keys)
        yield f"| {name} | {stride} | {cells} | {tracks} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="decodes of each frame")
    parser.add_argument("--occupancy", type=int, metavar="STRIDE", help="also run the clip")
    args = parser.parse_args()
    images = frames()
    print(f"{len(images)} frames\n")
    print("| outputs | threshold | detections a frame | decode + NMS, ms a frame |")
    print("|---|---|---|---|")
    for detector in (yolo(), ssd()):
        print("\n".join(decode_rows(detector, images, args.repeat)))
    print("\n| objects | tracker update, ms a frame |\n|---|---|")
    for objects in (1, 5, 20):
        print(f"| {objects} | {tracker_ms(objects):.3f} |")
    if args.occupancy:
        print(
            "\n| detector | stride | raw | plain 3-frame debounce | tracked | tracked + 2-frame"
            " debounce | person tracks |\n|---|---|---|---|---|---|---|"
        )
        for line in occupancy_rows(args.occupancy):
            print(line, flush=True)


if __name__ == "__main__":
    main()
