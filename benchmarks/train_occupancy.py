"""Train an occupancy model (empty / person) on a real clip and measure it against the targets.

Frames 0-699 of shared/media/one-by-one-person-detection.mp4 (labelled by
shared/datasets/one-by-one-person-occupancy.json) become a dataset folder; `train` turns it
into one int8 .tflite; the model then classifies frames 700-1393 (three other people) through
camapp's own Classifier, as `camapp classify` would. Targets: test accuracy >= 98 %,
training (embedding included) < 30 s, peak RSS < 400 MB. Also reports the embedding rate
against the bare interpreter's (ratios: the machine is shared), the int8 model's agreement
with its float head, and the report files.

    .venv/bin/python benchmarks/train_occupancy.py [--crop stretch] [--augment 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import INT8, MEDIA, SHARED

from camapp.inference.loader import load_file
from camapp.training.clip import clip_frames, dataset_from_clip, frame_labels
from camapp.training.cut import cut_classifier
from camapp.training.embed import bare_rate
from camapp.training.train import TrainSettings, train

CLIP = MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"
BASE = INT8
TARGETS = {"accuracy": 0.98, "seconds": 30.0, "rss_mb": 400.0}


def test_accuracy(model: Path, crop: str) -> tuple[float, int, list[int]]:
    """Accuracy of the trained model on the labelled frames 700-1393, via camapp's Classifier."""
    labels = frame_labels(RANGES)
    classifier = load_file(model, top_k=1)
    right, total, wrong = 0, 0, []
    for index, frame in clip_frames(CLIP, first=700):
        if index in labels:
            got = classifier.classify(frame, True, crop).top_k[0].label
            total += 1
            right += got == labels[index]
            if got != labels[index]:
                wrong.append(index)
    return right / total, total, wrong


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop", default="stretch", choices=["center", "stretch"])
    p.add_argument("--augment", type=int, default=1)
    p.add_argument("--keep", type=Path, help="keep the dataset, model and report here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        dataset, model = work / "dataset", work / "occupancy.tflite"
        start = time.perf_counter()
        counts = dataset_from_clip(CLIP, RANGES, dataset, first=0, last=699)
        dataset_s = time.perf_counter() - start
        settings = TrainSettings(base=str(BASE), crop=args.crop, augment=args.augment)
        start = time.perf_counter()
        report = train(dataset, model, settings)
        train_s = time.perf_counter() - start
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        accuracy, n_test, wrong = test_accuracy(model, args.crop)
        bare = bare_rate(cut_classifier(BASE).model, seconds=2.0)
        _print(counts, dataset_s, train_s, rss_mb, report, (accuracy, n_test, wrong), bare)
    met = accuracy >= TARGETS["accuracy"] and train_s < TARGETS["seconds"]
    return 0 if met and rss_mb < TARGETS["rss_mb"] else 1


def _print(counts, dataset_s, train_s, rss_mb, report, test, bare) -> None:
    accuracy, n_test, wrong = test
    images = report["images"]
    rate, threads = report["embed_rate"], report["threads"]
    print(f"dataset: frames 0-699 -> {counts} in {dataset_s:.1f} s")
    print(
        f"training: {images['train']} images + {images['augmented']} augmented, "
        f"{images['val']} validation; {report['epochs']} epochs"
    )
    print(
        f"  time {train_s:.1f} s (target < {TARGETS['seconds']:g} s): embedding "
        f"{report['seconds']['embed']:.1f} s, fit {report['seconds']['fit']:.2f} s"
    )
    print(
        f"  embedding rate {rate:.0f} images/s on {threads} threads (decode + preprocess "
        f"+ augment + invoke); bare interpreter {bare:.0f} invokes/s on 1 thread: "
        f"{rate / bare:.2f}x one bare thread, "
        f"{rate / (bare * threads):.2f} of {threads} bare threads"
    )
    print(f"  peak RSS {rss_mb:.0f} MB (target < {TARGETS['rss_mb']:g} MB)")
    print(
        f"  validation accuracy (int8) {report['val']['accuracy']:.3f}, "
        f"int8 agrees with float head on {report['int8_agreement']:.3f} of {report['agreement_on']}"
    )
    print(f"  model {report['model_bytes']} bytes; report {Path(report['report']).name}")
    print(
        f"test: frames 700-1393, {n_test} labelled: accuracy {accuracy:.4f} "
        f"(target >= {TARGETS['accuracy']}); wrong frames {wrong[:20]}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
