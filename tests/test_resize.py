"""camapp.resize: OpenCV's x86 bilinear, pixel for pixel, from integer arithmetic that gives
the same bytes on any CPU (issue 20; `make check-arm64` compares the bytes on arm64).

The numpy passes are tested forced (`opencv=False`): on x86 a `Resizer` would otherwise
take cv2 itself, having found it gives the same bytes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from camapp.detect.letterbox import PAD, fit, place
from camapp.inference.preprocess import Preprocessor
from camapp.resize import Resizer, _agrees, opencv_agrees, resize
from tests.conftest import SHARED_MEDIA

# (source height, width), (output width, height): down and up, odd, thin, exactly 2x, 1 pixel.
SIZES = [
    ((600, 512), (224, 224)),
    ((256, 256), (224, 224)),
    ((301, 451), (224, 160)),
    ((7, 5), (13, 11)),
    ((13, 17), (5, 3)),
    ((100, 100), (640, 640)),
    ((432, 768), (640, 360)),
    ((432, 768), (300, 300)),
    ((448, 448), (224, 224)),
    ((1, 1), (5, 3)),
    ((5, 9), (1, 1)),
]
PHOTOS = ["grace_hopper.bmp", "parrot.jpg", "chelsea.png"]


def numpy_resize(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    out = np.empty((size[1], size[0], *src.shape[2:]), np.uint8)
    Resizer(src.shape, size, opencv=False)(src, out)
    return out


def random_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def float_bilinear(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The textbook formula in float64: OpenCV's half-pixel mapping, edges clamped, rounded."""

    def axis(n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.clip((np.arange(d) + 0.5) * n / d - 0.5, 0, n - 1)
        lo = np.floor(x).astype(int)
        return lo, np.minimum(lo + 1, n - 1), x - lo

    (y0, y1, fy), (x0, x1, fx) = axis(src.shape[0], size[1]), axis(src.shape[1], size[0])
    s, fy, fx = src.astype(np.float64), fy[:, None, None], fx[None, :, None]
    top = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
    bottom = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
    return np.floor(top * (1 - fy) + bottom * fy + 0.5)


def scalar_opencv(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV's integer kernel written pixel by pixel with Python ints (resize.cpp: 11-bit
    float32-rounded weights, exact horizontal sums, vertical high-16-bit products)."""

    def taps(n: int, d: int, clamp: bool) -> list[tuple[int, int, int, int]]:
        found = []
        for i in range(d):
            pos = np.float32((i + 0.5) * (1.0 / (d / n)) - 0.5)
            lo = math.floor(pos)
            frac = np.float32(pos - np.float32(lo))
            if clamp and not 0 <= lo < n - 1:
                frac = np.float32(0)
            w0 = int(np.rint((np.float32(1) - frac) * np.float32(2048)))
            w1 = int(np.rint(frac * np.float32(2048)))
            found.append((min(max(lo, 0), n - 1), min(max(lo + 1, 0), n - 1), w0, w1))
        return found

    rows, cols = taps(src.shape[0], size[1], False), taps(src.shape[1], size[0], True)
    s = src.astype(int).tolist()
    out = np.empty((size[1], size[0], 3), np.uint8)
    for y, (r0, r1, b0, b1) in enumerate(rows):
        for x, (c0, c1, a0, a1) in enumerate(cols):
            for c in range(3):
                top = (s[r0][c0][c] * a0 + s[r0][c1][c] * a1) >> 4
                bottom = (s[r1][c0][c] * a0 + s[r1][c1][c] * a1) >> 4
                out[y, x, c] = min(255, (((top * b0) >> 16) + ((bottom * b1) >> 16) + 2) >> 2)
    return out


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_within_one_level_of_the_float_formula(shape, size) -> None:
    image = random_image(shape, seed=sum(shape))
    diff = numpy_resize(image, size).astype(int) - float_bilinear(image, size)
    # 11-bit weights and truncating shifts: about an eighth of the pixels one level off.
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.15


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("size", [(224, 224), (300, 300), (97, 131), (640, 640)])
def test_real_photos_within_one_level(photo: str, size: tuple[int, int]) -> None:
    image = cv2.imread(str(SHARED_MEDIA / photo))
    diff = numpy_resize(image, size).astype(int) - float_bilinear(image, size)
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.15


@pytest.mark.parametrize(("shape", "size"), [s for s in SIZES if s[0][0] * s[0][1] < 2e5])
def test_the_vectors_compute_the_scalar_kernel(shape, size) -> None:
    image = random_image(shape, seed=7)
    if shape == (2 * size[1], 2 * size[0]):  # OpenCV's 2x box filter instead
        expected = (image.reshape(size[1], 2, size[0], 2, 3).sum((1, 3)) + 2) >> 2
    else:
        expected = scalar_opencv(image, size)
    assert np.array_equal(numpy_resize(image, size), expected)


@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_the_bytes_of_x86_opencv(shape, size) -> None:
    """The bytes the reference answers were recorded with: cv2 on x86 (this suite's CPU)."""
    image = random_image(shape, seed=11)
    assert np.array_equal(numpy_resize(image, size), cv2.resize(image, size))


@pytest.mark.parametrize("photo", PHOTOS)
def test_real_photos_match_x86_opencv_in_grey_and_colour(photo: str) -> None:
    colour = cv2.imread(str(SHARED_MEDIA / photo))
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    for image in (colour, grey, colour[50:-30, 20:-70]):  # a crop: a strided view
        assert np.array_equal(numpy_resize(image, (224, 224)), cv2.resize(image, (224, 224)))


@pytest.mark.parametrize("opencv", [True, False])
def test_writes_into_a_letterbox_view(opencv: bool) -> None:
    image = random_image((60, 80), seed=3)
    out = np.zeros((64, 64, 3), np.uint8)
    geometry = fit(image.shape, (slice(0, 60), slice(0, 80)), (64, 64), letterbox=True)
    place(image, geometry, out)  # the detector's call
    (left, top), (w, h) = geometry.pad, geometry.resized
    assert np.array_equal(out[top : top + h, left : left + w], numpy_resize(image, (w, h)))
    assert (out[:top] == PAD).all() and (out[top + h :] == PAD).all()
    view = np.zeros((64, 64, 3), np.uint8)[top : top + h, left : left + w]
    Resizer(image.shape, (w, h), opencv=opencv)(image, view)
    assert np.array_equal(view, numpy_resize(image, (w, h)))


def test_refuses_a_wrong_shape() -> None:
    image = random_image((60, 80), seed=3)
    with pytest.raises(ValueError, match="cannot resize into"):
        resize(image, (32, 32), np.empty((32, 31, 3), np.uint8))
    with pytest.raises(ValueError, match=r"cannot resize \(61, 80, 3\)"):
        Resizer(image.shape, (32, 32), opencv=False)(random_image((61, 80), 1), image[:32, :32])


def test_opencv_is_taken_only_where_it_gives_the_same_bytes() -> None:
    # x86's INTER_LINEAR: the same bytes. INTER_LINEAR_EXACT rounds otherwise, as an ARM
    # build's bilinear may: the probe must tell.
    assert opencv_agrees((432, 432, 3), (224, 224))
    assert not opencv_agrees((432, 432, 3), (224, 224), cv2.INTER_LINEAR_EXACT)


def test_the_preprocessor_gives_the_numpy_bytes() -> None:
    from camapp.inference.backend import InputSpec

    pre = Preprocessor(InputSpec(224, 224, np.dtype(np.uint8), 1 / 127.5, 127))
    image = cv2.imread(str(SHARED_MEDIA / "grace_hopper.bmp"))  # 512x512 centre: box, then
    out = np.empty((224, 224, 3), np.uint8)
    pre(image, True, out)
    shrunk = cv2.resize(image[44:556], (256, 256), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out, numpy_resize(shrunk, (224, 224))[..., ::-1])


def test_frames_of_the_model_size_are_copied() -> None:
    image = random_image((224, 224), seed=5)
    out = resize(image, (224, 224))
    assert np.array_equal(out, image) and out is not image


def test_opencv_is_tried_once_per_process_not_per_shape() -> None:
    """A detector's crops come in a new shape nearly every frame: each must not pay a numpy
    resize to decide whether cv2 may do it (1.6 ms a crop where cv2 takes 0.08)."""
    _agrees.cache_clear()
    for side in range(40, 80):
        Resizer((side, side + 7, 3), (224, 224))(random_image((side, side + 7), side),
                                               np.empty((224, 224, 3), np.uint8))  # fmt: skip
    assert _agrees.cache_info().misses == 1  # one kind: colour, up on both axes
