"""Teach camapp your scene: train new classes on the device, int8, no TensorFlow.

The entry points the CLI wires `camapp train` and `camapp dataset` onto:
- `check_dataset(dir, progress)` -> DatasetReport; `format_check(report)` for a terminal.
- `save_frame(dataset, label, image, sidecar)`: collect a camera frame into a dataset.
- `dataset_from_clip(clip, ranges, dataset, first, last, stride)`: frames labelled by ranges.
- `train(dataset, out, TrainSettings(...), progress)`: OUT.tflite + OUT.report.md/.png.
- `distill(clip, out, teacher, student, DistillSettings(...), progress)`: a small model
  that answers like a big one on a scene, learnt without labels.
`progress(stage, done, total)` is always called on the caller's thread.
"""

from camapp.config.training import DistillSettings, HeadSettings, TrainSettings
from camapp.datasets import save_frame
from camapp.training.check import DatasetReport, check_dataset, format_check
from camapp.training.clip import dataset_from_clip
from camapp.training.distill import distill
from camapp.training.frames import parse_roi
from camapp.training.train import train

__all__ = [
    "DatasetReport",
    "DistillSettings",
    "HeadSettings",
    "TrainSettings",
    "check_dataset",
    "dataset_from_clip",
    "distill",
    "format_check",
    "parse_roi",
    "save_frame",
    "train",
]
