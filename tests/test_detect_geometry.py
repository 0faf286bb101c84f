"""Letterbox geometry, boxes mapped back to the frame through a region of interest, and the
two label-file conventions of detectors."""

from __future__ import annotations

import numpy as np
import pytest

from camapp.detect.labels import class_names
from camapp.detect.letterbox import PAD, fit, place, to_frame
from camapp.errors import ConfigError
from camapp.inference.preprocess import region
from camapp.models.labels import read_labels
from tests.detect_helpers import SSD, SSD_LABELS, YOLO, YOLO_LABELS

FRAME = (432, 768, 3)  # the clips' frames: 768 x 432


def test_letterbox_scales_once_and_centres_with_grey_bars() -> None:
    whole = region(FRAME, (640, 640), "stretch")
    geometry = fit(FRAME, whole, (640, 640), letterbox=True)
    assert geometry.resized == (640, 360) and geometry.pad == (0, 140)
    image = np.full(FRAME, 7, np.uint8)
    out = np.zeros((640, 640, 3), np.uint8)
    place(image, geometry, out)
    assert (out[:140] == PAD).all() and (out[500:] == PAD).all()
    assert (out[140:500] == 7).all()


def test_a_stretched_region_fills_the_input() -> None:
    geometry = fit(FRAME, region(FRAME, (300, 300), "stretch"), (300, 300), letterbox=False)
    assert geometry.resized == (300, 300) and geometry.pad == (0, 0)


def model_box(frame_box: list[float], geometry) -> np.ndarray:
    """Where a box given as fractions of the frame lands in the model's input, as fractions."""
    w, h = geometry.frame
    x1, y1, x2, y2 = np.array(frame_box) * [w, h, w, h] - np.array(geometry.origin * 2)
    sx = geometry.resized[0] / geometry.region[0]
    sy = geometry.resized[1] / geometry.region[1]
    px, py = geometry.pad
    mw, mh = geometry.model
    return np.array(
        [(x1 * sx + px) / mw, (y1 * sy + py) / mh, (x2 * sx + px) / mw, (y2 * sy + py) / mh]
    )


@pytest.mark.parametrize("letterbox", [True, False])
@pytest.mark.parametrize("crop", ["stretch", "center"])
@pytest.mark.parametrize("roi", [None, (0.25, 0.1, 0.9, 0.8)])
def test_boxes_map_back_to_the_frame_through_roi_crop_and_letterbox(
    letterbox: bool, crop: str, roi: tuple[float, float, float, float] | None
) -> None:
    box = [0.5, 0.3, 0.6, 0.7]  # inside every region tried
    geometry = fit(FRAME, region(FRAME, (640, 480), crop, roi), (640, 480), letterbox)
    np.testing.assert_allclose(
        to_frame(model_box(box, geometry)[None], geometry)[0], box, atol=1e-6
    )


def test_a_box_reaching_into_the_padding_stops_at_the_region() -> None:
    roi = (0.25, 0.0, 0.75, 1.0)
    geometry = fit(FRAME, region(FRAME, (640, 640), "stretch", roi), (640, 640), letterbox=True)
    frame_box = to_frame(np.array([[0.0, 0.0, 1.0, 1.0]]), geometry)[0]
    np.testing.assert_allclose(frame_box, [0.25, 0.0, 0.75, 1.0], atol=1e-6)


def test_ssd_label_map_is_read_one_line_down() -> None:
    names = class_names(read_labels(SSD, SSD_LABELS), None, "labelmap.txt")
    assert names[0] == "person" and names[2] == "car" and names[11] == "???"
    assert names[17] == "dog" and names[89] == "toothbrush"
    assert class_names(read_labels(SSD, SSD_LABELS), 90, "labelmap.txt") == names


def test_a_plain_list_is_read_line_for_line() -> None:
    names = class_names(read_labels(YOLO, YOLO_LABELS), 80, "coco_labels.txt")
    assert len(names) == 80 and names[0] == "person" and names[16] == "dog"
    assert names[79] == "toothbrush"


@pytest.mark.parametrize(
    ("labels", "classes"), [(YOLO_LABELS, 90), (SSD_LABELS, 80), (YOLO_LABELS, 79)]
)
def test_labels_that_do_not_fit_the_class_count_are_one_line(labels, classes: int) -> None:
    lines = read_labels(YOLO, labels)
    with pytest.raises(
        ConfigError,
        match=rf"^labels file {labels.name} has {len(lines)} lines "
        rf"but the model has {classes} classes \(expected",
    ):
        class_names(lines, classes, labels.name)
