"""What full-integer quantization buys: size, speed and agreement of int8 against float.

Dequantizes the shared int8 MobileNetV2 into a float reference, quantizes it back calibrated
on frames from the first half of the two shared clips, and compares float, our int8 and the
published int8 on the photos plus frames from the clips' second halves: agreement over all
images, and over those the float model scores 0.5 or more (what the app's state counts).
Speed is the median invoke time at the same thread count; on a machine shared with other
work only the ratios mean anything.

    python benchmarks/quantize.py [--frames 16] [--held-out 100] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import CLIPS, INT8, MEDIA

from camapp.tflite.quantize import dequantize_model, quantize_model
from camapp.tools.calibration import read_frames, to_samples
from camapp.tools.pair import agreement, compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="calibration frames per clip")
    parser.add_argument("--held-out", type=int, default=100, help="held-out frames per clip")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images")
    parser.add_argument("--headroom", type=float, default=1.5, help="logit headroom (1: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        float_model, ours = Path(tmp) / "float.tflite", Path(tmp) / "int8.tflite"
        dequantize_model(INT8, float_model)
        frames = [f for clip in CLIPS for f in read_frames(clip, args.frames, (0.0, 0.5))]
        start = time.perf_counter()
        quantize_model(float_model, to_samples(frames, 224), ours, logit_headroom=args.headroom)
        seconds = time.perf_counter() - start
        print(f"quantization: {seconds:.1f} s for {len(frames)} calibration frames")
        photos = read_frames(MEDIA, 100)
        held_out = [f for clip in CLIPS for f in read_frames(clip, args.held_out, (0.5, 1.0))]
        print(
            "| int8 | images | agreement | float >= 0.5 | size ratio | speed-up | ms float/int8 |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, model in (("ours", ours), ("published", INT8)):
            for label, images in (("photos", photos), ("held-out frames", held_out)):
                c = compare(float_model, model, images, args.threads, args.repeats)
                confident = agreement(float_model, model, images, args.threads, min_score=0.5)
                print(
                    f"| {name} | {label} ({len(images)}) | {c.agreement:.3f} | {confident:.3f} "
                    f"| {c.size_ratio:.2f} | {c.speedup:.2f} "
                    f"| {c.median_ms[0]:.1f} / {c.median_ms[1]:.1f} |"
                )


if __name__ == "__main__":
    main()
