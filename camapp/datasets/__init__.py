"""Datasets on disk: DATASET/<label>/*.jpg|png, one folder per class.

Below the runtime, Home Assistant, the tools and training, which all save into or read them.
"""

from camapp.datasets.folder import (
    IMAGE_SUFFIXES,
    Sample,
    check_label,
    class_dirs,
    is_image,
    is_label,
    save_frame,
    scan,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "Sample",
    "check_label",
    "class_dirs",
    "is_image",
    "is_label",
    "save_frame",
    "scan",
]
