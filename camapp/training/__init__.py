"""Teach camapp your scene: train new classes on the device, int8, no TensorFlow.

Public entry points (the CLI wires `camapp train` and `camapp dataset` onto these):
- `check_dataset(dir)` / `format_check(report)`: is DATASET/<label>/*.jpg ready to train on?
- `save_frame(dataset, label, image, sidecar)`: collect a camera frame into a dataset.
- `dataset_from_clip(clip, ranges, dataset, ...)`: a dataset from a clip labelled by ranges.
- `train(dataset, out, TrainSettings(...), progress)`: write OUT.tflite and its report.
- `distill(clip, out, DistillSettings(...), progress)`: a small model mimicking a big one.
"""
