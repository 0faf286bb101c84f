"""Preprocessing: quantization mapping, crop geometry, channel order, buffer reuse."""

from __future__ import annotations

import numpy as np

from camapp.inference.backend import InputSpec
from camapp.inference.preprocess import Preprocessor, quantize_lut, region


def spec(
    size: int, dtype: type, scale: float = 0.0, zero_point: int = 0, **norm: float
) -> InputSpec:
    return InputSpec(size, size, np.dtype(dtype), scale, zero_point, **norm)


def test_pixel_models_need_no_mapping() -> None:
    # Both manifest models take raw pixels: (q - 127) / 127.5 and (q - 128) / 128 are x/127.5 - 1.
    assert quantize_lut(spec(224, np.uint8, 1 / 127.5, 127)) is None
    assert quantize_lut(spec(224, np.uint8, 1 / 128, 128)) is None


def test_int8_input_gets_a_lookup_table() -> None:
    lut = quantize_lut(spec(224, np.int8, 1 / 127.5, 0))
    assert lut is not None and lut.dtype == np.int8
    assert lut[0] == -128 and lut[255] == 127 and abs(int(lut[128])) <= 1


def test_center_crop_and_stretch_regions() -> None:
    assert region((432, 768, 3), (224, 224), "center") == (slice(0, 432), slice(168, 600))
    assert region((432, 768, 3), (224, 224), "stretch") == (slice(0, 432), slice(0, 768))


def test_center_crop_keeps_a_non_square_models_aspect() -> None:
    wide = (200, 100)  # width, height
    assert region((400, 400, 3), wide, "center") == (slice(100, 300), slice(0, 400))
    assert region((100, 800, 3), wide, "center") == (slice(0, 100), slice(300, 500))


def test_writes_rgb_into_the_given_buffer() -> None:
    pre = Preprocessor(spec(4, np.uint8, 1 / 127.5, 127))
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    out = np.zeros((4, 4, 3), np.uint8)
    pre(bgr, True, out, "stretch")
    assert (out[..., 2] == 200).all() and (out[..., :2] == 0).all()


def test_center_crop_ignores_the_sides() -> None:
    pre = Preprocessor(spec(4, np.uint8, 1 / 127.5, 127))
    image = np.full((8, 16, 3), 255, np.uint8)
    image[:, 4:12] = 10  # the centred square
    out = np.empty((4, 4, 3), np.uint8)
    pre(image, False, out)
    assert (out == 10).all()


def test_float_models_get_minus_one_to_one() -> None:
    pre = Preprocessor(spec(2, np.float32))
    image = np.array([[[0, 255, 0], [255, 0, 255]]] * 2, np.uint8)
    out = np.empty((2, 2, 3), np.float32)
    pre(image, False, out, "stretch")
    assert out.min() == -1.0 and out.max() == 1.0


def test_normalisation_comes_from_the_model() -> None:
    # A model trained on [0, 1] inputs (mean 0, std 255), float and quantized for that range.
    image = np.array([[[0, 255, 51]] * 2] * 2, np.uint8)
    out = np.empty((2, 2, 3), np.float32)
    Preprocessor(spec(2, np.float32, mean=(0.0,), std=(255.0,)))(image, False, out, "stretch")
    assert np.allclose(out[0, 0], [0.0, 1.0, 0.2])
    unit = spec(2, np.uint8, 1 / 255, 0, mean=(0.0,), std=(255.0,))
    assert quantize_lut(unit) is None  # q = pixel again, on the whole 0..255 range
    half = quantize_lut(spec(2, np.int8, 1 / 255, -128, mean=(0.0,), std=(255.0,)))
    assert half is not None and half[0] == -128 and half[255] == 127


def test_one_table_quantizes_every_pixel_into_the_models_own_buffer() -> None:
    """YOLOv8n's int8 input (pixel / 255, scale 0.018658, zero point -14): each of the
    640x640x3 values is the table's entry for its pixel, written into the buffer given (a
    view, as the interpreter's input tensor is)."""
    yolo = spec(640, np.int8, 0.018658, -14, mean=(0.0,), std=(255.0,))
    lut = quantize_lut(yolo)
    assert lut is not None and lut.ndim == 1
    image = np.random.default_rng(3).integers(0, 256, (640, 640, 3), np.uint8)
    tensor = np.zeros((1, 640, 640, 3), np.int8)
    Preprocessor(yolo)(image, False, tensor[0], "stretch")
    assert np.array_equal(tensor[0], lut[image])
    want = np.clip(np.round(image / 255 / 0.018658 - 14), -128, 127)
    assert np.abs(tensor[0] - want).max() == 0


def test_per_channel_normalisation() -> None:
    # ImageNet's per-channel mean and std, as some models' metadata give them.
    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    image = np.full((2, 2, 3), 200, np.uint8)
    out = np.empty((2, 2, 3), np.float32)
    Preprocessor(spec(2, np.float32, mean=mean, std=std))(image, False, out, "stretch")
    assert np.allclose(out[0, 0], (200 - np.array(mean)) / np.array(std), atol=1e-5)
    quantized = spec(2, np.int8, 0.02, 0, mean=mean, std=std)
    q = np.empty((2, 2, 3), np.int8)
    Preprocessor(quantized)(image, False, q, "stretch")
    assert q[0, 0].tolist() == np.round((200 - np.array(mean)) / np.array(std) / 0.02).tolist()


def test_buffers_are_reused_between_frames() -> None:
    # int8 input: the lookup-table path, which uses every intermediate buffer; 1080p frames
    # take the whole-factor shrink first.
    pre = Preprocessor(spec(224, np.int8, 1 / 127.5, 0))
    rng = np.random.default_rng(0)
    out = np.empty((224, 224, 3), np.int8)
    pre(rng.integers(0, 255, (1080, 1920, 3), np.uint8), True, out)
    buffers = [b.ctypes.data for b in (pre._resized, pre._rgb, pre._shrunk)]
    assert pre._shrunk.shape == (270, 270, 3)  # the centred 1080 square shrunk by 4
    results = []
    for _ in range(3):
        pre(rng.integers(0, 255, (1080, 1920, 3), np.uint8), True, out)
        results.append(out.copy())
        assert [b.ctypes.data for b in (pre._resized, pre._rgb, pre._shrunk)] == buffers
    assert not np.array_equal(results[0], results[1])  # each frame really went through


def test_region_of_interest_comes_before_the_crop() -> None:
    pre = Preprocessor(spec(4, np.uint8, 1 / 127.5, 127))
    # The right half of a 100x200 frame is 100x100: already square, nothing more to crop.
    assert region((100, 200, 3), (4, 4), "center", (0.5, 0.0, 1.0, 1.0)) == (
        slice(0, 100),
        slice(100, 200),
    )
    # The bottom half of a 200x200 frame, centre-cropped to a square: its middle 100 columns.
    assert region((200, 200, 3), (4, 4), "center", (0.0, 0.5, 1.0, 1.0)) == (
        slice(100, 200),
        slice(50, 150),
    )
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, 8:] = 250  # the right half is bright
    out = np.empty((4, 4, 3), np.uint8)
    pre(image, False, out, "stretch", (0.5, 0.0, 1.0, 1.0))
    assert (out == 250).all()
