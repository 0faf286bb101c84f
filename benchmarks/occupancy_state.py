"""Does the debounced state follow the room? An occupancy model trained on the clip's first
half, replayed through the real `camapp run` on the second half (three other people).

The retained `state` must equal the true label (shared/datasets) at every frame except within
1 s after each change of the truth. The state of a frame is the last state published whose run
began at or before it (`since` is the capture time of the run's first frame; each frame's
capture time comes from its `classification` message).

    .venv/bin/python benchmarks/occupancy_state.py [--state-frames 3] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import MEDIA, SHARED

from camapp.bench.broker import Broker
from camapp.bench.harness import Receiver, say
from camapp.training.clip import clip_frames, dataset_from_clip, frame_labels
from camapp.training.train import TrainSettings, train

CLIP = MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"
SPLIT = 700
FPS = 10.0  # the clip's rate: 1 s is 10 frames


def second_half(out: Path) -> Path:
    """Frames 700.. of the clip as a file of their own, at the clip's rate."""
    writer = None
    for _, frame in clip_frames(CLIP, first=SPLIT):
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(
                str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height)
            )
        writer.write(frame)
    assert writer is not None
    writer.release()
    return out


def truth() -> dict[int, str]:
    """The true label of each labelled frame of the second half, numbered from 0 there."""
    return {i - SPLIT: label for i, label in frame_labels(RANGES).items() if i >= SPLIT}


def states_by_frame(classifications: list[dict], states: list[dict]) -> dict[int, str | None]:
    frame_of_ts = {round(m["ts"], 3): m["frame"] for m in classifications}
    starts = sorted((frame_of_ts[round(s["since"], 3)], s["label"]) for s in states)
    current, out, k = None, {}, 0
    for frame in sorted(m["frame"] for m in classifications):
        while k < len(starts) and starts[k][0] <= frame:
            current = starts[k][1]
            k += 1
        out[frame] = current
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state-frames", type=int, default=3)
    p.add_argument("--threshold", type=float, default=0.5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="camapp-occupancy-") as tmp_name:
        tmp = Path(tmp_name)
        dataset_from_clip(CLIP, RANGES, tmp / "ds", 0, SPLIT - 1, 1)
        model = tmp / "occupancy.tflite"
        say("training on frames 0-699")
        train(tmp / "ds", model, TrainSettings(crop="stretch"))
        clip = second_half(tmp / "second.avi")
        broker = Broker(tmp).start()
        (tmp / "c").mkdir()
        (tmp / "s").mkdir()
        try:
            cls = Receiver(broker.port, "camapp/room/classification", tmp / "c")
            state = Receiver(broker.port, "camapp/room/state", tmp / "s")
            command = [sys.executable, "-m", "camapp", "run", "--source", str(clip),
                       "--camera-id", "room", "--model", str(model), "--no-realtime",
                       "--no-drop", "--state-frames", str(args.state_frames),
                       "--threshold", str(args.threshold),
                       "--mqtt-port", str(broker.port)]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
            classifications = [json.loads(p) for _, _, p in cls.received]
            states = [json.loads(p) for _, _, p in state.received]
            cls.close()
            state.close()
        finally:
            broker.stop()
    return report(classifications, states)


def report(classifications: list[dict], states: list[dict]) -> int:
    labels = truth()
    shown = states_by_frame(classifications, states)
    # The dataset leaves the 4 frames either side of each change unlabelled: the change is
    # the middle of the gap between two labelled runs.
    ordered = sorted(labels)
    changes = [(a + b + 1) // 2 for a, b in itertools.pairwise(ordered) if labels[a] != labels[b]]
    grace = {f + d for f in changes for d in range(int(FPS))}
    judged = [f for f in labels if f in shown and f not in grace]
    wrong = [f for f in judged if shown[f] != labels[f]]
    say(f"{len(classifications)} frames classified, {len(states)} states published, "
        f"{len(changes)} true changes")  # fmt: skip
    say(f"state equals the truth on {len(judged) - len(wrong)} of {len(judged)} frames "
        f"(outside 1 s after each change); wrong at {wrong[:20]}")  # fmt: skip
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
