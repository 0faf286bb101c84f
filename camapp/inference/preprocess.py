"""Frames to model input: crop, resize, channel order, normalisation and quantization, in place.

The normalisation (mean, std) and the quantization come from the model's `InputSpec`, so no
model's conventions are assumed here.
"""

from __future__ import annotations

import cv2
import numpy as np

from camapp.inference.backend import InputSpec
from camapp.resize import Resizer

CROPS = ("center", "stretch")
Roi = tuple[float, float, float, float]


def quantize_lut(spec: InputSpec) -> np.ndarray | None:
    """Map 8-bit pixels straight to the model's quantized input, or None when the raw pixel
    already is the input (e.g. MobileNet: scale 1/127.5 or 1/128, zero point 127 or 128, which
    undo its (pixel - 127.5) / 127.5), so a frame costs no float round trip.

    One table of 256 entries, or one per channel (shape 3x256) when the normalisation differs
    between channels."""
    pixels = np.arange(256, dtype=np.float64)
    mean = np.asarray(spec.mean, np.float64)[:, None]
    std = np.asarray(spec.std, np.float64)[:, None]
    q = np.round((pixels - mean) / std / spec.scale + spec.zero_point)
    info = np.iinfo(spec.dtype)
    q = np.clip(q, info.min, info.max)
    if spec.dtype == np.uint8 and np.abs(q - pixels).max() <= 1:
        return None
    return (q[0] if len(q) == 1 else q).astype(spec.dtype)


def roi_slices(
    shape: tuple[int, ...], roi: tuple[float, float, float, float]
) -> tuple[slice, slice]:
    """The rows and columns of a region of interest (fractions of the frame), at least 1 px:
    training and inference cut the same pixels."""
    h, w = shape[:2]
    x1, y1, x2, y2 = roi
    top, left = round(y1 * h), round(x1 * w)
    return slice(top, max(top + 1, round(y2 * h))), slice(left, max(left + 1, round(x2 * w)))


def region(
    shape: tuple[int, ...],
    model_size: tuple[int, int],
    crop: str = "center",
    roi: Roi | None = None,
) -> tuple[slice, slice]:
    """The part of a frame that reaches a model of `model_size` (width, height): the region of
    interest (all of the frame by default), then its centred part of the model's aspect, or
    all of it. The preprocessor cuts it; the live view draws it."""
    if roi is not None:
        rows, cols = roi_slices(shape, roi)
        inner = region((rows.stop - rows.start, cols.stop - cols.start), model_size, crop)
        return _shift(inner[0], rows.start), _shift(inner[1], cols.start)
    h, w = shape[:2]
    mw, mh = model_size
    if crop == "stretch" or h * mw == w * mh:
        return slice(0, h), slice(0, w)
    if w * mh > h * mw:  # wider than the model: trim the sides
        side = h * mw // mh
        left = (w - side) // 2
        return slice(0, h), slice(left, left + side)
    side = w * mh // mw
    top = (h - side) // 2
    return slice(top, top + side), slice(0, w)


class Preprocessor:
    """Turns HxWx3 frames into one model input tensor; one per worker, buffers reused per frame."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.dtype = np.dtype(spec.dtype)
        self._size = (spec.width, spec.height)
        self._resized = np.empty((spec.height, spec.width, 3), np.uint8)
        self._rgb = np.empty((spec.height, spec.width, 3), np.uint8)
        self._shrunk = np.empty((0, 0, 3), np.uint8)  # sized by the first frame
        self._resizer: Resizer | None = None  # made for the first frame's shape
        self._float = self.dtype.kind == "f"
        self._lut = None if self._float or not spec.scale else quantize_lut(spec)
        # The model takes raw RGB pixels: write them straight into its input buffer.
        self._direct = not self._float and self._lut is None
        std, mean = np.asarray(spec.std, np.float32), np.asarray(spec.mean, np.float32)
        gain, offset = 1 / std, mean / std
        # Scalars when every channel is normalised alike: numpy's fastest path.
        self._gain = float(gain[0]) if len(set(gain.tolist())) == 1 else gain
        self._offset = float(offset[0]) if len(set(offset.tolist())) == 1 else offset

    def __call__(
        self,
        image: np.ndarray,
        bgr: bool,
        out: np.ndarray,
        crop: str = "center",
        roi: Roi | None = None,
    ) -> None:
        """Write the model input for `image` into `out` (the backend's own input buffer)."""
        rows, cols = region(image.shape, self._size, crop, roi)
        src = image[rows, cols]
        pixels = out if self._direct else self._rgb
        if bgr:
            self._resize(src, self._resized)
            cv2.cvtColor(self._resized, cv2.COLOR_BGR2RGB, dst=pixels)
        elif not self._direct and src.shape[1::-1] == self._size and src.flags.c_contiguous:
            pixels = src  # model-sized RGB already (a detector's letterboxed input): no copy
        else:
            self._resize(src, pixels)
        if self._float:
            np.multiply(pixels, self._gain, out=out, casting="unsafe")
            out -= self._offset
        elif self._lut is not None:
            if self._lut.ndim == 1:  # OpenCV's table lookup: 7x numpy's take on 640x640x3
                if cv2.LUT(pixels, self._lut, dst=out) is not out:  # pragma: no cover
                    raise RuntimeError("cv2.LUT did not write into the model's input")
            else:  # per-channel normalisation
                for channel in range(3):
                    out[..., channel] = self._lut[channel][pixels[..., channel]]

    @property
    def resizer(self) -> Resizer | None:
        """The bilinear step's resizer, None until a frame needed one: `make check-arm64`
        reports whether it took OpenCV or camapp's numpy on the Pi."""
        return self._resizer

    def _resize(self, src: np.ndarray, dst: np.ndarray) -> None:
        h, w = src.shape[:2]
        if (w, h) == self._size:
            np.copyto(dst, src)
            return
        # A box filter (INTER_AREA) never aliases, but unless the factor is a whole number it
        # costs five times as much as bilinear. So shrink by the largest whole factor with it,
        # then bilinear for the rest: a factor under 2, where bilinear still reads every pixel.
        fy, fx = max(1, h // self._size[1]), max(1, w // self._size[0])
        if fx > 1 or fy > 1:
            shape = (h // fy, w // fx, 3)
            if self._shrunk.shape != shape:
                self._shrunk = np.empty(shape, np.uint8)
            whole = src[: shape[0] * fy, : shape[1] * fx]
            cv2.resize(whole, shape[1::-1], dst=self._shrunk, interpolation=cv2.INTER_AREA)
            src = self._shrunk
        # INTER_AREA by whole factors gives the same bytes on x86 and arm64; INTER_LINEAR
        # does not with OpenCV 5 on arm64, so the bilinear step is camapp.resize's.
        if self._resizer is None or self._resizer.shape != src.shape:
            self._resizer = Resizer(src.shape, self._size)
        self._resizer(src, dst)


def _shift(part: slice, by: int) -> slice:
    return slice(part.start + by, part.stop + by)
