"""Frames of a video file, and datasets cut from a clip labelled by frame ranges.

The ranges file is JSON: {"ranges": [{"label": "empty", "first": 0, "last": 56}, ...]}
with 0-based frame indices in decoding order; frames in no range are left out
(e.g. the ambiguous ones either side of a change).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from camapp.capture.opencv import open_video
from camapp.datasets import check_label, save_frame
from camapp.errors import ConfigError, os_reason, shorten
from camapp.files import read_text

MAX_LABELLED_FRAMES = 1_000_000  # 9 hours at 30 fps; bounds the index built from the ranges


def frame_labels(path: Path) -> dict[int, str]:
    """Frame index -> label, from a ranges file (read bounded, and at most
    MAX_LABELLED_FRAMES frames labelled: a range to 1e12 would fill memory)."""
    try:
        data = json.loads(read_text(path))
        ranges = [
            (check_label(str(r["label"])), int(r["first"]), int(r["last"])) for r in data["ranges"]
        ]
        if sum(max(0, last - first + 1) for _, first, last in ranges) > MAX_LABELLED_FRAMES:
            raise ValueError(f"more than {MAX_LABELLED_FRAMES} frames labelled")
        labels = {i: label for label, first, last in ranges for i in range(first, last + 1)}
    except OSError as exc:
        raise ConfigError(f"cannot read {shorten(path)}: {os_reason(exc)}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid frame ranges file {shorten(path)}: {exc!s:.100}") from None
    return labels


def clip_frames(
    path: Path, stride: int = 1, first: int = 0, last: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) for every `stride`-th frame from `first` to `last` (inclusive).

    Frames are decoded one at a time, so a long clip never sits in memory.
    """
    capture = open_video(Path(path))
    try:
        index = 0
        while last is None or index <= last:
            if not capture.grab():
                break
            if index >= first and (index - first) % stride == 0:
                ok, frame = capture.retrieve()
                if ok:
                    yield index, frame
            index += 1
    finally:
        capture.release()


def dataset_from_clip(
    clip: Path,
    ranges: Path,
    dataset: Path,
    first: int = 0,
    last: int | None = None,
    stride: int = 1,
) -> dict[str, int]:
    """Save the labelled frames of `clip` (within first..last) into DATASET/<label>/;
    return how many per label."""
    labels = frame_labels(ranges)
    counts: dict[str, int] = {}
    for index, frame in clip_frames(clip, stride, first, last):
        label = labels.get(index)
        if label is not None:
            save_frame(dataset, label, frame, {"source": Path(clip).name, "frame": index})
            counts[label] = counts.get(label, 0) + 1
    return counts


def clip_length(path: Path) -> int:
    """The frame count a video file declares (what to size result arrays by)."""
    capture = open_video(Path(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        raise ConfigError(f"cannot tell the length of video {shorten(path)}")
    return count
