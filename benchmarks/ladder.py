"""The governor's policies under one CPU budget, in one run: skip frames, or step down the model
ladder, or both.

`camapp run --source car-detection.mp4 --loop --no-realtime --cpu-budget 25 --adapt POLICY`
for each policy, through a private mosquitto. Per policy: classifications/s, top-1 agreement
of what was published with the top model (mobilenet_v2_int8) on the same frames, the models
that answered, and each stats window's CPU (the worst must stay within budget + 5 once the
governor has settled: the first two windows are its start).

With `--detector`, a detector camera instead: YOLOv8n (`--min-score 0.4`) on the person clip,
its ladder the SSD; per policy the frames detected per second, the share of published person
counts (tracked) that equal the occupancy labels (judged frames: labelled, not within 1 s
after a change), the models that answered, and the same CPU windows.

    .venv/bin/python benchmarks/ladder.py [--budget 25] [--seconds 40] [--detector]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import MEDIA, SHARED

from camapp import models
from camapp.bench.broker import Broker
from camapp.bench.harness import Receiver, say
from camapp.capture.opencv import FileSource
from camapp.inference.loader import load_file
from camapp.training.clip import frame_labels
from tests.detect_helpers import judged_frames

CLIP = MEDIA / "car-detection.mp4"
LADDER = ("mobilenet_v1_0.75_192", "mobilenet_v1_0.5_160", "mobilenet_v1_0.25_128")
PEOPLE = MEDIA / "one-by-one-person-detection.mp4"
OCCUPANCY = SHARED / "datasets" / "one-by-one-person-occupancy.json"
DETECTORS = ("yolov8n_coco", "ssd_mobilenet_v1_coco")
PEOPLE_FRAMES, PEOPLE_FPS = 1394, 10


def judged_people() -> list[int | None]:
    """The person count each frame of the person clip should have (None: not judged: not
    labelled, or within 1 s after a change)."""
    truth = frame_labels(OCCUPANCY)
    judged = judged_frames(truth, PEOPLE_FPS)
    return [int(truth[i] == "person") if i in judged else None for i in range(PEOPLE_FRAMES)]


def top_labels() -> list[str]:
    """The top model's answer for each frame of the clip."""
    classifier = load_file(models.resolve_model(None), top_k=1)
    source = FileSource(CLIP, realtime=False)
    try:
        return [classifier.classify(f.image, True).top_k[0].label for f in iter(source.read, None)]
    finally:
        source.close()


def run(
    policy: str, budget: float, seconds: float, broker: Broker, work: Path, detector: bool
) -> dict:
    work.mkdir()
    (work / "s").mkdir()
    camera = f"ladder-{policy}"
    topic = "objects" if detector else "classification"
    results = Receiver(broker.port, f"camapp/{camera}/{topic}", work)
    stats = Receiver(broker.port, f"camapp/{camera}/stats", work / "s")
    source = ["--source", str(PEOPLE), "--model", DETECTORS[0], "--min-score", "0.4",
              "--track", "person"] if detector else ["--source", str(CLIP)]  # fmt: skip
    command = [sys.executable, "-m", "camapp", "run", *source, "--loop",
               "--no-realtime", "--camera-id", camera, "--cpu-budget", str(budget),
               "--adapt", policy, "--duration", str(seconds), "--stats-interval", "5",
               "--mqtt-port", str(broker.port)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    out = {
        "results": [json.loads(p) for _, _, p in results.received],
        "stats": [json.loads(p) for _, _, p in stats.received],
    }
    results.close()
    stats.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=25.0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--detector", action="store_true", help="YOLOv8n stepping to the SSD")
    args = p.parse_args()
    for name in DETECTORS if args.detector else LADDER:
        models.fetch(name, mirror=SHARED / "models")
    truth = judged_people() if args.detector else top_labels()
    what = "person count right" if args.detector else f"agreement with {models.DEFAULT_MODEL}"
    print(f"| policy | {'frames' if args.detector else 'classifications'}/s | {what} | models "
          "| worst CPU after 10 s (budget) | CPU per window |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="camapp-ladder-") as tmp:
        broker = Broker(Path(tmp)).start()
        try:
            for policy in ("stride", "model", "auto"):
                say(f"policy {policy}")
                work = Path(tmp) / policy
                got = run(policy, args.budget, args.seconds, broker, work, args.detector)
                print(row(policy, got, truth, args))
        finally:
            broker.stop()
    return 0


def row(policy: str, got: dict, truth: list, args: argparse.Namespace) -> str:
    results = got["results"]
    if args.detector:  # the tracked person count against the labels, on the judged frames
        pairs = [(r["counts"]["person"], truth[r["frame"] % len(truth)]) for r in results]
        judged = [got == want for got, want in pairs if want is not None]
        agree, results_judged = sum(judged), max(len(judged), 1)
    else:
        agree = sum(r["label"] == truth[r["frame"] % len(truth)] for r in results)
        results_judged = max(len(results), 1)
    used = Counter(r["model"] for r in results)
    cpu = [s["cpu_pct"] for s in got["stats"] if s["cpu_pct"] is not None]
    settled = cpu[2:] or cpu
    shares = ", ".join(f"{name} {n / len(results):.0%}" for name, n in used.most_common())
    return (
        f"| {policy} | {len(results) / args.seconds:.1f} | {agree / results_judged:.1%} "
        f"| {shares} | {max(settled):.1f} % ({args.budget:g}) "
        f"| {', '.join(f'{c:.0f}' for c in cpu)} |"
    )


if __name__ == "__main__":
    sys.exit(main())
