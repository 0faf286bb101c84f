"""Bilinear resize that gives the same bytes on every CPU: OpenCV's arithmetic, in numpy.

OpenCV's INTER_LINEAR for 8-bit pixels is not the same code everywhere: the arm64 wheels of
OpenCV 5 (what a plain `pip install` brings to a Pi) round about one byte in five otherwise
than x86's, enough to flip a near tie's top-1 (issue 20). Here the x86 kernel's integer
arithmetic is written out in numpy, whose integer operations are exact everywhere: the
bytes are those of x86 OpenCV (which the reference answers were recorded with), on any CPU.
Where this machine's cv2 gives those very bytes (checked once per process for each kind of
resize: channels, and up or down on each axis), cv2 runs instead: it is about ten times
faster. docs/benchmarks.md has the figures, and why not an
exactly rounded bilinear.

The arithmetic: source position (x + 0.5) * src / dst - 0.5; 11-bit weights rounded from
float32 fractions; a horizontal pass in exact integers (pixel * 2048), then a vertical one
that drops 4 bits, keeps the high 16 bits of each product and rounds the last 2 away.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

ONE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: weights in 11 bits
# A probe's side per axis (source, resized): down as a frame to a model input, up as a small
# crop to a classifier's. cv2 is tried once per kind of resize, not per frame shape: a
# detector's crops come in a new shape nearly every time, and a try costs a numpy resize.
DOWN, UP = (432, 224), (97, 300)


@dataclass(frozen=True, slots=True)
class Taps:
    """One axis' resampling: output i = src[lo[i]] * w_lo[i] + src[hi[i]] * w_hi[i], in
    units of 1/ONE; indices clipped to the source."""

    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray


@functools.lru_cache(maxsize=64)
def taps(src: int, dst: int, clamp: bool, channels: int = 1) -> Taps:
    """The taps of resizing `src` pixels to `dst`, once per size pair (a camera's frames all
    share them). OpenCV sets the weight of a column past either edge to 0 (`clamp`), not a
    row's; with `channels`, indices and weights address interleaved pixels (x * channels + c)."""
    scale = 1.0 / (dst / src)  # as OpenCV computes it, to the last bit
    pos = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.intp)
    if clamp:
        outside = (lo < 0) | (lo >= src - 1)
        frac[outside] = 0
    hi = np.clip(lo + 1, 0, src - 1)
    lo = np.clip(lo, 0, src - 1)
    # saturate_cast<short>(w * ONE): rounded half to even, as np.rint does.
    w_lo = np.rint((np.float32(1) - frac) * np.float32(ONE)).astype(np.int32)
    w_hi = np.rint(frac * np.float32(ONE)).astype(np.int32)
    if channels > 1:
        spread = np.arange(channels)
        lo, hi = ((i[:, None] * channels + spread).ravel() for i in (lo, hi))
        w_lo, w_hi = np.repeat(w_lo, channels), np.repeat(w_hi, channels)
    return Taps(lo, hi, w_lo, w_hi)


@dataclass(frozen=True, slots=True)
class Plan:
    """A frame shape's way to one size, as index and weight arrays (see `Resizer.__call__`)."""

    rows: np.ndarray  # the source rows read
    cols: Taps  # interleaved: indices of pixel * channels + channel
    top: np.ndarray  # each output row's top and bottom source rows, as indices into `rows`
    bottom: np.ndarray
    w_top: np.ndarray  # column vectors
    w_bottom: np.ndarray
    clip: bool  # whether a weight pair sums past ONE + 1, so a pixel could pass 255


@functools.lru_cache(maxsize=32)
def plan(shape: tuple[int, ...], size: tuple[int, int]) -> Plan:
    """The plan of resizing frames of `shape` (HxW or HxWxC) to `size` (width, height)."""
    (h, w), (width, height) = shape[:2], size
    channels = shape[2] if len(shape) == 3 else 1
    rows, cols = taps(h, height, False), taps(w, width, True, channels)
    read = np.union1d(rows.lo, rows.hi)
    clip = max(int((t.w_lo + t.w_hi).max()) for t in (rows, cols)) > ONE + 1
    top, bottom = np.searchsorted(read, rows.lo), np.searchsorted(read, rows.hi)
    return Plan(read, cols, top, bottom, rows.w_lo[:, None], rows.w_hi[:, None], clip)


class Resizer:
    """Resizes frames of one shape to one size. With OpenCV where this machine's cv2.resize
    gives the same bytes (`opencv_agrees`: x86 does), else in numpy, in buffers
    allocated once (3.8 MB for 432x432 to 224x224). A worker's preprocessor keeps one (not
    thread-safe)."""

    def __init__(
        self, shape: tuple[int, ...], size: tuple[int, int], opencv: bool | None = None
    ) -> None:
        self.shape, self.size = shape, size
        width, height = size
        self._out_shape = (height, width, *shape[2:])
        self.opencv = opencv_agrees(shape, size) if opencv is None else opencv
        # At exactly half size OpenCV takes its box filter, whose bytes are the same on every
        # CPU (INTER_AREA by whole factors; docs/benchmarks.md).
        self._box = shape[:2] == (2 * height, 2 * width)
        if self.opencv or self._box:
            return
        self._plan = p = plan(shape, size)
        n, k = len(p.rows), len(p.cols.lo)
        self._read = np.empty((n, *shape[1:]), np.uint8)
        self._read_flat = self._read.reshape(n, -1)
        self._picked = np.empty((n, k), np.uint8)
        self._across = np.empty((n, k), np.int32)
        spare = np.empty((max(n, height), k), np.int32)  # one pass's second term, then the other's
        self._spare_across, self._spare_down = spare[:n], spare[:height]
        self._sum = np.empty((height, k), np.int32)
        self._result = self._sum.reshape(self._out_shape)

    def __call__(self, src: np.ndarray, out: np.ndarray) -> None:
        """Write `src` (of this shape) resized into `out`, a view of a model's input maybe.
        Each step is one numpy call into a buffer: a frame allocates nothing."""
        if src.shape != self.shape or out.shape != self._out_shape:
            raise ValueError(f"cannot resize {src.shape} into {out.shape} with {self.shape}")
        if self.opencv or self._box:
            how = cv2.INTER_LINEAR if self.opencv else cv2.INTER_AREA
            if out.flags.c_contiguous:
                cv2.resize(src, self.size, dst=out, interpolation=how)
            else:  # a view into a letterboxed input
                np.copyto(out, cv2.resize(src, self.size, interpolation=how))
            return
        p, across, spare, total = self._plan, self._across, self._spare_across, self._sum
        # Horizontal: exact, pixel * ONE; then OpenCV's vector kernel keeps 12 of its 19 bits.
        np.take(src, p.rows, axis=0, out=self._read, mode="clip")
        np.take(self._read_flat, p.cols.lo, axis=1, out=self._picked, mode="clip")
        np.multiply(self._picked, p.cols.w_lo, out=across)
        np.take(self._read_flat, p.cols.hi, axis=1, out=self._picked, mode="clip")
        np.multiply(self._picked, p.cols.w_hi, out=spare)
        np.add(across, spare, out=across)
        np.right_shift(across, 4, out=across)
        # Vertical: the high halves of 16-bit products, summed, rounded by 2 bits, saturated.
        spare = self._spare_down
        np.take(across, p.top, axis=0, out=total, mode="clip")
        np.multiply(total, p.w_top, out=total)
        np.right_shift(total, 16, out=total)
        np.take(across, p.bottom, axis=0, out=spare, mode="clip")
        np.multiply(spare, p.w_bottom, out=spare)
        np.right_shift(spare, 16, out=spare)
        np.add(total, spare, out=total)
        np.add(total, 2, out=total)
        if p.clip:
            np.minimum(total, 4 * 255, out=total)
        np.right_shift(self._result, 2, out=out, casting="unsafe")


def opencv_agrees(
    shape: tuple[int, ...], size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR
) -> bool:
    """Whether cv2.resize, as installed here, gives this module's bytes for frames of
    `shape` resized to `size`: tried once per kind of resize (`_agrees`)."""
    up = (size[0] > shape[1], size[1] > shape[0])
    return _agrees(shape[2:], up, interpolation)


@functools.cache
def _agrees(channels: tuple[int, ...], up: tuple[bool, bool], interpolation: int) -> bool:
    """Tried on a fixed random frame of that kind (channels, up or down on each axis),
    where about one pixel in eight shows any other rounding. True with x86's OpenCV 5.1 and
    arm64's 4.11, false with arm64's 5.1 (docs/benchmarks.md)."""
    (w, width), (h, height) = (UP if up[0] else DOWN), (UP if up[1] else DOWN)
    shape, size = (h + 34, w, *channels), (width, height + 17)  # odd, and not square
    probe = np.random.default_rng(20).integers(0, 256, shape, dtype=np.uint8)
    mine = np.empty((size[1], size[0], *channels), np.uint8)
    Resizer(shape, size, opencv=False)(probe, mine)
    return np.array_equal(cv2.resize(probe, size, interpolation=interpolation), mine)


def resize(src: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """`src` (HxWxC or HxW, uint8) resized bilinearly to `size` (width, height), as
    cv2.resize(src, size, interpolation=cv2.INTER_LINEAR) gives it on x86; into `out` when
    given (a view of the model's input, say), else into a new array. A numpy resize
    allocates its buffers per call: a hot path keeps a `Resizer`."""
    width, height = size
    shape = (height, width, *src.shape[2:])
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape:
        raise ValueError(f"cannot resize into {out.shape}: the size asks for {shape}")
    if src.shape[:2] == (height, width):
        np.copyto(out, src)
    else:
        Resizer(src.shape, size)(src, out)
    return out
