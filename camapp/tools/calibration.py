"""Calibration frames: a few dozen pictures like those the camera sees, as model inputs.

Post-training quantization picks each tensor's int8 range from what the float model computes
on these; frames evenly spread over a clip cover its scenes better than consecutive ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from camapp.capture.imagefile import IMAGE_SUFFIXES, read_image
from camapp.capture.opencv import open_video
from camapp.errors import ConfigError, shorten
from camapp.inference.backend import InputSpec
from camapp.inference.preprocess import Preprocessor

MAX_FRAMES = 1000  # calibration needs dozens; this bounds the memory a typo could take


def positions(total: int, count: int, span: tuple[float, float]) -> list[int]:
    """`count` indices evenly spread over the `span` fraction of `total` items (fewer if the
    span holds fewer); adjacent spans share no index."""
    first, last = int(np.ceil(span[0] * total)), int(np.ceil(span[1] * total)) - 1
    if last < first:
        return []
    return sorted(set(np.linspace(first, last, count).round().astype(int).tolist()))


def shrink(image: np.ndarray, cover: int | None) -> np.ndarray:
    """An image scaled down so its shorter side is `cover` pixels (None, or smaller already:
    as it is): it still covers a model input that size, in a fraction of the memory."""
    h, w = image.shape[:2]
    if cover is None or min(h, w) <= cover:
        return image
    size = (max(1, round(w * cover / min(h, w))), max(1, round(h * cover / min(h, w))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _video_frames(
    path: Path, count: int, span: tuple[float, float], cover: int | None
) -> list[np.ndarray]:
    capture = open_video(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            raise ConfigError(f"cannot read frames from {shorten(path)}: its length is unknown")
        frames = []
        for index in positions(total, count, span):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)  # frame-exact with FFmpeg
            ok, frame = capture.read()
            if ok:
                frames.append(cv2.cvtColor(shrink(frame, cover), cv2.COLOR_BGR2RGB))
        return frames
    finally:
        capture.release()


def _image_frames(
    directory: Path, count: int, span: tuple[float, float], cover: int | None
) -> list[np.ndarray]:
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    frames = []
    for index in positions(len(files), count, span):
        image = read_image(files[index])
        frames.append(cv2.cvtColor(shrink(image, cover), cv2.COLOR_BGR2RGB))
    return frames


def read_frames(
    source: Path, count: int, span: tuple[float, float] = (0.0, 1.0), cover: int | None = None
) -> list[np.ndarray]:
    """Up to `count` RGB frames evenly spaced over a video, or over a directory's images
    (sorted by name), taken from the `span` fraction of it: (0, 0.5) and (0.5, 1) split one
    clip into calibration frames and held-out frames. With `cover`, each is shrunk as it is
    read (see shrink()), so many frames of a large video stay small."""
    source = Path(source)
    if not 1 <= count <= MAX_FRAMES:
        raise ConfigError(f"frame count must be 1 to {MAX_FRAMES}, not {count}")
    if not 0.0 <= span[0] < span[1] <= 1.0:
        raise ConfigError(f"span must be two fractions 0 <= start < end <= 1, not {span}")
    if source.is_dir():
        frames = _image_frames(source, count, span, cover)
    elif source.is_file():
        frames = _video_frames(source, count, span, cover)
    else:
        raise ConfigError(f"calibration source not found: {source}")
    if not frames:
        raise ConfigError(f"no frames read from {source}")
    return frames


def to_samples(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Model inputs for MobileNet-style float models: centre square, `size`x`size`, [-1, 1].

    Uses the app's own preprocessing, so the int8 ranges fit the frames the app will feed.
    """
    preprocess = Preprocessor(InputSpec(size, size, np.dtype(np.float32)))
    for frame in frames:
        sample = np.empty((1, size, size, 3), np.float32)
        preprocess(frame, False, sample[0])
        yield sample
