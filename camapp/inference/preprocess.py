"""Frames to model input: crop, resize, channel order and quantization, into reused buffers."""

from __future__ import annotations

import cv2
import numpy as np

CROPS = ("center", "stretch")


def quantize_lut(dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray | None:
    """Map 8-bit pixels straight to the model's quantized input, or None when no mapping is needed.

    MobileNet expects pixels normalised to [-1, 1]. With uint8 input quantized so that
    q = pixel (scale 1/127.5 or 1/128, zero point 127 or 128) the raw pixel already *is* the
    input; otherwise a 256-entry table does it without a float round trip.
    """
    pixels = np.arange(256, dtype=np.float64)
    q = np.round((pixels / 127.5 - 1.0) / scale + zero_point)
    info = np.iinfo(dtype)
    q = np.clip(q, info.min, info.max)
    if dtype == np.uint8 and np.abs(q - pixels).max() <= 1:
        return None
    return q.astype(dtype)


class Preprocessor:
    """Turns HxWx3 frames into one model input tensor; one per worker, buffers reused per frame."""

    def __init__(
        self,
        size: int,
        dtype: np.dtype,
        scale: float = 0.0,
        zero_point: int = 0,
        crop: str = "center",
    ) -> None:
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}")
        self.size = size
        self.crop = crop
        self.dtype = np.dtype(dtype)
        self._resized = np.empty((size, size, 3), np.uint8)
        self._rgb = np.empty((size, size, 3), np.uint8)
        self._shrunk = np.empty((0, 0, 3), np.uint8)  # sized by the first frame
        self._float = self.dtype == np.float32
        self._lut = None if self._float else quantize_lut(self.dtype, scale, zero_point)
        # The model takes raw RGB pixels: write them straight into its input buffer.
        self._direct = not self._float and self._lut is None

    def region(self, shape: tuple[int, ...]) -> tuple[slice, slice]:
        """The part of a frame that reaches the model: the centred square, or all of it."""
        h, w = shape[:2]
        if self.crop == "stretch" or h == w:
            return slice(0, h), slice(0, w)
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return slice(top, top + side), slice(left, left + side)

    def __call__(self, image: np.ndarray, bgr: bool, out: np.ndarray) -> None:
        """Write the model input for `image` into `out` (the interpreter's own input buffer)."""
        rows, cols = self.region(image.shape)
        src = image[rows, cols]
        pixels = out if self._direct else self._rgb
        if bgr:
            self._resize(src, self._resized)
            cv2.cvtColor(self._resized, cv2.COLOR_BGR2RGB, dst=pixels)
        else:
            self._resize(src, pixels)
        if self._float:
            np.multiply(pixels, 1 / 127.5, out=out, casting="unsafe")
            out -= 1.0
        elif self._lut is not None:
            np.take(self._lut, pixels, out=out)

    def _resize(self, src: np.ndarray, dst: np.ndarray) -> None:
        h, w = src.shape[:2]
        if (h, w) == (self.size, self.size):
            np.copyto(dst, src)
            return
        # A box filter (INTER_AREA) never aliases, but unless the factor is a whole number it
        # costs five times as much as bilinear. So shrink by the largest whole factor with it,
        # then bilinear for the rest: a factor under 2, where bilinear still reads every pixel.
        fy, fx = max(1, h // self.size), max(1, w // self.size)
        if fx > 1 or fy > 1:
            shape = (h // fy, w // fx, 3)
            if self._shrunk.shape != shape:
                self._shrunk = np.empty(shape, np.uint8)
            whole = src[: shape[0] * fy, : shape[1] * fx]
            cv2.resize(whole, shape[1::-1], dst=self._shrunk, interpolation=cv2.INTER_AREA)
            src = self._shrunk
        cv2.resize(src, (self.size, self.size), dst=dst, interpolation=cv2.INTER_LINEAR)
