"""Where a model's input came from in the frame, and boxes mapped back there.

A detector sees a region of the frame (the camera's region of interest, perhaps cropped to
the model's aspect: `camapp.inference.preprocess.region` says which pixels), resized to its
input either stretched (SSD) or letterboxed (YOLO: one scale for both axes, the rest padded
with grey 114). `Geometry` records that once per frame size; `to_frame` undoes it for the
boxes, so they come out as fractions of the whole frame whatever the model and the ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camapp.resize import Resizer, resize

PAD = 114  # the grey YOLO models were trained with around letterboxed images


@dataclass(frozen=True, slots=True)
class Geometry:
    """Model input pixel = (frame pixel - origin) * scale + pad, per axis."""

    frame: tuple[int, int]  # the whole frame's (width, height)
    origin: tuple[int, int]  # top-left corner of the region the model sees, in frame pixels
    region: tuple[int, int]  # that region's (width, height)
    model: tuple[int, int]  # the model input's (width, height)
    resized: tuple[int, int]  # the region's size once resized into the input
    pad: tuple[int, int]  # left and top padding in the input


def fit(
    frame_shape: tuple[int, ...],
    region: tuple[slice, slice],
    model_size: tuple[int, int],
    letterbox: bool,
) -> Geometry:
    """The geometry of fitting the frame's `region` (rows, columns) into a model of
    `model_size` (width, height): stretched to fill it, or letterboxed (centred, padded)."""
    rows, cols = region
    width, height = cols.stop - cols.start, rows.stop - rows.start
    mw, mh = model_size
    resized, pad = (mw, mh), (0, 0)
    if letterbox:
        scale = min(mw / width, mh / height)
        resized = (max(1, round(width * scale)), max(1, round(height * scale)))
        pad = ((mw - resized[0]) // 2, (mh - resized[1]) // 2)
    return Geometry(
        frame=(frame_shape[1], frame_shape[0]),
        origin=(cols.start, rows.start),
        region=(width, height),
        model=model_size,
        resized=resized,
        pad=pad,
    )


def place(
    image: np.ndarray, geometry: Geometry, out: np.ndarray, resizer: Resizer | None = None
) -> None:
    """Write the region's pixels (`image`, already cut from the frame) into `out`, the
    model-sized HxWx3 buffer: resized as `geometry` says, the border grey. A caller placing
    frame after frame passes the `Resizer` it keeps for them (`resizer_for`): a numpy resize
    made anew allocates its buffers each time."""
    (left, top), (w, h) = geometry.pad, geometry.resized
    out[:top] = PAD
    out[top + h :] = PAD
    out[top : top + h, :left] = PAD
    out[top : top + h, left + w :] = PAD
    into = out[top : top + h, left : left + w]
    if resizer is None:
        resize(image, (w, h), into)  # the same bytes on any CPU
    else:
        resizer(image, into)


def resizer_for(shape: tuple[int, ...], geometry: Geometry, kept: Resizer | None) -> Resizer | None:
    """The Resizer `place` needs for a region of `shape`: `kept` if it is that one, a new
    one if the size changes, None if the region is placed unscaled (a copy)."""
    size = geometry.resized
    if shape[:2] == size[::-1]:
        return None
    if kept is not None and kept.shape == shape and kept.size == size:
        return kept
    return Resizer(shape, size)


def to_frame(boxes: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Boxes (n, 4: x1, y1, x2, y2) as fractions of the model input -> fractions of the
    whole frame, clipped to the region the model saw (a box reaching into the padding ends
    at the picture's edge)."""
    g = geometry
    model = np.array(g.model * 2, np.float64)
    pad = np.array(g.pad * 2, np.float64)
    scale = np.array(g.region, np.float64) / np.array(g.resized, np.float64)
    origin = np.array(g.origin * 2, np.float64)
    pixels = (np.asarray(boxes, np.float64) * model - pad) * np.tile(scale, 2) + origin
    low, high = origin, origin + np.tile(np.array(g.region, np.float64), 2)
    return (np.clip(pixels, low, high) / np.array(g.frame * 2, np.float64)).astype(np.float32)
