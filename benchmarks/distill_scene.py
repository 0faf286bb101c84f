"""Distillation without labels on a real clip: how close does a 8x smaller model get?

Two teachers label every 2nd frame of shared/media/one-by-one-person-detection.mp4; the
student base is MobileNetV1 0.25/128. Agreement with the teacher is measured on the clip's
last 30 % of frames (other people, unseen by both heads):

1. ImageNet teacher (MobileNetV2 int8, 1001 classes): before = the student base's own
   ImageNet head, mapped by label; after = the distilled head.
2. Occupancy teacher (trained on frames 0-699 with their labels, as in train_occupancy.py):
   after only (ImageNet has no 'empty'/'person'), plus both models' accuracy against the
   true labels on those held-out frames.

Speed-up is the student's bare-interpreter rate over the teacher's (one thread).

    .venv/bin/python benchmarks/distill_scene.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import INT8, MEDIA, SHARED

from camapp.inference.loader import load_file
from camapp.training.clip import clip_frames, dataset_from_clip, frame_labels
from camapp.training.distill import DistillSettings, distill
from camapp.training.train import TrainSettings, train

CLIP = MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"
TEACHER = INT8
STUDENT = SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite"


def _show(name: str, r: dict) -> None:
    before = r["agreement_before"]
    print(f"{name}: {r['teacher']} -> {r['student_base']}, classes {r['classes']}")
    print(
        f"  held-out frames {r['frames']['holdout']}: agreement with teacher before "
        f"{'n/a' if before is None else f'{before:.3f}'}, after {r['agreement_after']:.3f}"
    )
    print(
        f"  speed: teacher {r['teacher_rate']:.0f}/s, student {r['student_rate']:.0f}/s "
        f"(one thread): {r['speedup']:.1f}x; {r['seconds']:.1f} s to distil; "
        f"{r['model_bytes']} bytes"
    )


def _truth_accuracy(model: Path, first: int) -> float:
    """Accuracy against the true labels on every 2nd labelled frame from `first`."""
    labels = frame_labels(RANGES)
    classifier = load_file(model, top_k=1)
    hits = [
        classifier.classify(frame, True, "stretch").top_k[0].label == labels[i]
        for i, frame in clip_frames(CLIP, 2, first)
        if i in labels
    ]
    return sum(hits) / len(hits)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        imagenet = distill(CLIP, work / "imagenet-student.tflite", str(TEACHER), str(STUDENT))
        _show("ImageNet teacher", imagenet)
        dataset_from_clip(CLIP, RANGES, work / "dataset", first=0, last=699)
        teacher = work / "occupancy.tflite"
        train(work / "dataset", teacher, TrainSettings(base=str(TEACHER), crop="stretch"))
        settings = DistillSettings(crop="stretch")
        student = work / "occupancy-student.tflite"
        occupancy = distill(CLIP, student, str(teacher), str(STUDENT), settings)
        _show("occupancy teacher", occupancy)
        first = 2 * occupancy["frames"]["train"]
        print(
            f"  true-label accuracy on held-out frames {first}-1393: teacher "
            f"{_truth_accuracy(teacher, first):.3f}, student {_truth_accuracy(student, first):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
