"""Frames to model input for training, and the light augmentation applied before embedding.

Region of interest (cut by the same `roi_slices` as the preprocessor), then centre crop or
stretch, then resize. What is trained here must be what runs at inference, so the settings
are recorded in the grafted model, and applied by default where it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from camapp.config import schema
from camapp.errors import ConfigError, shorten
from camapp.inference.preprocess import roi_slices

Roi = tuple[float, float, float, float]


def parse_roi(value: Sequence[float] | str | None) -> Roi | None:
    """[x1, y1, x2, y2] as fractions of the frame (or "x1,y1,x2,y2"), checked as the `roi`
    setting is; None = all."""
    if value is None:
        return None
    try:
        return schema.parse_roi(value)
    except ValueError as exc:
        raise ConfigError(f"region of interest {exc}: {shorten(value)}") from None


def _region(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    if roi is None:
        return image
    rows, cols = roi_slices(image.shape, roi)
    return image[rows, cols]


def prepare(
    image: np.ndarray,
    size: int,
    crop: str = "center",
    roi: Roi | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A BGR frame -> size x size RGB uint8: region, augmented when `rng` is given (after the
    region, so a mirror never moves it), then centre square or stretch, resized."""
    src = _region(image, roi)
    if rng is not None:
        src = augment(src, rng)
    h, w = src.shape[:2]
    if crop == "center" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        src = src[top : top + side, left : left + side]
    resized = cv2.resize(src, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random variant of a frame: maybe mirrored, cropped by up to 10% a side, and
    0.75-1.25x as bright. Mild on purpose: a fixed camera sees small variations only."""
    out = image[:, ::-1] if rng.random() < 0.5 else image
    h, w = out.shape[:2]
    dy0, dy1 = (rng.uniform(0, 0.1, 2) * h).astype(int)
    dx0, dx1 = (rng.uniform(0, 0.1, 2) * w).astype(int)
    out = out[dy0 : h - dy1, dx0 : w - dx1]
    gain = rng.uniform(0.75, 1.25)
    return cv2.convertScaleAbs(out, alpha=gain)
