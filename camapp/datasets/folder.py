"""A training set on disk: DATASET/<label>/*.jpg|png|bmp, one folder per class.

Anything else in the tree (sidecars, notes, hidden files) is ignored, so frames can be
collected straight from a camera with `save_frame` and sorted by moving files.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camapp.capture.imagefile import IMAGE_SUFFIXES
from camapp.errors import ConfigError, echo, os_reason, shorten

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


def is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def class_dirs(root: Path) -> list[Path]:
    """The class folders of a dataset, sorted by name; a missing root is the user's to fix."""
    root = Path(root)
    if not root.is_dir():
        what = "not found" if not root.exists() else "not a directory"
        raise ConfigError(f"dataset {what}: {shorten(root)}")
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise ConfigError(f"cannot list dataset {shorten(root)}: {os_reason(exc)}") from None


def scan(root: Path) -> list[Sample]:
    """Every image of the dataset with its label (the folder name), in a stable order."""
    samples = []
    for folder in class_dirs(root):
        try:
            files = sorted(folder.iterdir())
        except OSError as exc:
            raise ConfigError(f"cannot list {shorten(folder)}: {os_reason(exc)}") from None
        samples += [Sample(f, folder.name) for f in files if is_image(f)]
    return samples


def is_label(label: str) -> bool:
    """A label becomes a folder name and a line in the model: plain ones only."""
    return bool(_LABEL.fullmatch(label))


def check_label(label: str) -> str:
    if not is_label(label):
        raise ConfigError(
            f"invalid label {echo(label)}: letters, digits, space, _ . + - (at most 64), "
            "starting with a letter or digit"
        )
    return label


def save_frame(dataset: Path, label: str, image: np.ndarray, sidecar: dict[str, Any]) -> Path:
    """Write `image` (BGR uint8) as DATASET/label/<time>.jpg with a JSON sidecar beside it.

    The sidecar records where the frame came from (camera, crop/roi, ...); `time` and
    `label` are added when the caller leaves them out. Returns the JPEG's path.
    """
    folder = Path(dataset) / check_label(label)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"frame must be an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ConfigError(f"cannot encode frame of shape {image.shape} as JPEG")
    now = datetime.now(UTC)
    meta = {"time": now.isoformat(timespec="milliseconds"), "label": label, **sidecar}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = _new_name(folder, now.strftime("%Y%m%dT%H%M%S_%f"))
        _write(path, encoded.tobytes(), json.dumps(meta, sort_keys=True, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot save frame in {shorten(folder)}: {os_reason(exc)}") from None
    return path


def _write(path: Path, jpeg: bytes, sidecar: str) -> None:
    """The JPEG and its sidecar, both or neither: a write that fails (a full disk) leaves no
    cut-off JPEG in the dataset, nor a JPEG without its sidecar."""
    try:
        path.write_bytes(jpeg)
        path.with_suffix(".json").write_text(sidecar)
    except OSError:
        for written in (path, path.with_suffix(".json")):
            with contextlib.suppress(OSError):
                written.unlink(missing_ok=True)
        raise


def _new_name(folder: Path, stem: str) -> Path:
    """A file name no other frame has, even for two frames within the same microsecond."""
    path, n = folder / f"{stem}.jpg", 1
    while path.exists():
        path, n = folder / f"{stem}-{n}.jpg", n + 1
    return path
