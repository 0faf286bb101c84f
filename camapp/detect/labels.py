"""Class ids to names, for both conventions detectors' label files come in.

- SSD's label map (TensorFlow's object detection API): `???` on the first line and in the
  gaps of the COCO ids, so class id k is line k + 1.
- A plain list (YOLO and most others): class id k is line k.

The lines are the file's, as `camapp.models.labels.read_labels` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

from camapp.errors import ConfigError

UNKNOWN = "???"


def class_names(lines: Sequence[str], classes: int | None, source: str) -> list[str]:
    """Names indexed by class id. `classes` is the model's class count (None when its outputs
    do not tell, as with TFLite_Detection_PostProcess's ids); labels that do not fit it are a
    one-line ConfigError naming `source`."""
    lines = list(lines)
    label_map = bool(lines) and lines[0] == UNKNOWN
    if classes is None:
        names = lines[1:] if label_map else lines
        if not names:
            raise ConfigError(f"labels file {source} has no labels")
        return names
    if len(lines) == classes:
        return lines
    if label_map and len(lines) == classes + 1:
        return lines[1:]
    raise ConfigError(
        f"labels file {source} has {len(lines)} lines but the model has {classes} classes"
        f" (expected {classes}, or {classes + 1} with {UNKNOWN} first)"
    )
