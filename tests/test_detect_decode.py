"""Decoding the two detector families: the real SSD and YOLOv8n on real photos and frames
give the reference answers (../shared/README.md), and the layouts other exports use (TF2's
output order, the transposed raw tensor, float outputs and input, pixel coordinates) decode
to the same detections."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from camapp.detect.decode import POSTPROCESS, RAW, Decoder, Detections, Output, classify_outputs
from camapp.detect.track import iou_matrix
from camapp.errors import ConfigError
from camapp.tflite.dequantize import dequantize_model
from camapp.training.clip import clip_frames
from tests.conftest import SHARED_MEDIA, SHARED_MODELS
from tests.detect_helpers import YOLO, Detector, Found, outputs_of, ssd, yolo

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
PEOPLE = {100: 1, 400: 1, 700: 0, 1000: 1, 1300: 1}  # frame -> persons in view


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    return {"ssd": ssd(), "yolo": yolo()}


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SHARED_MEDIA / "grace_hopper.bmp")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def clip() -> dict[int, np.ndarray]:
    """The reference frames of the person clip, RGB."""
    return {
        i: cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        for i, frame in clip_frames(CLIP, last=max(PEOPLE))
        if i in PEOPLE
    }


def same(a: Detections, b: Detections, tolerance: float = 1e-4) -> None:
    """Two decodings found the same objects, in the same order, at the same places."""
    assert a.labels.tolist() == b.labels.tolist()
    np.testing.assert_allclose(a.scores, b.scores, atol=tolerance)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=tolerance)


@pytest.mark.parametrize(("name", "person"), [("ssd", 0.7), ("yolo", 0.9)])
def test_grace_hopper_is_a_person_with_a_tie(detectors, hopper, name: str, person: float) -> None:
    found = detectors[name](hopper)
    assert found.labels[0] == "person" and found.best("person") >= person
    assert "tie" in found.labels
    tie = found.boxes[found.labels.index("tie")]
    body = found.boxes[0]
    assert body[0] < tie[0] < tie[2] < body[2] and body[1] < tie[1] < tie[3] <= body[3]


@pytest.mark.parametrize("name", ["ssd", "yolo"])
@pytest.mark.parametrize("index", sorted(PEOPLE))
def test_clip_frames_have_the_people_in_view(detectors, clip, name: str, index: int) -> None:
    found = detectors[name](clip[index])
    assert found.labels.count("person") == PEOPLE[index]


def person(found: Found) -> np.ndarray:
    return found.boxes[found.labels.index("person")]


@pytest.mark.parametrize("index", [100, 400, 1000, 1300])
def test_both_detectors_put_the_person_at_the_same_place_in_the_frame(
    detectors, clip, index: int
) -> None:
    """The SSD stretches the frame, YOLOv8n letterboxes it: mapped back, the boxes agree."""
    boxes = [person(detectors[name](clip[index])) for name in ("ssd", "yolo")]
    assert iou_matrix(boxes[0], boxes[1])[0, 0] >= 0.8
    assert 0.4 < boxes[0][0] < 0.6  # the person walks in the middle of the frame


@pytest.mark.parametrize("name", ["ssd", "yolo"])
def test_a_region_of_interest_maps_back_to_the_whole_frame(detectors, clip, name: str) -> None:
    """Seen through the right 60 % of the frame (ROI), the person's box is where the whole
    frame had it, and the `tv` on the dark window at the left is out of view."""
    whole = detectors[name](clip[1000])
    right = detectors[name](clip[1000], roi=(0.4, 0.0, 1.0, 1.0))
    assert right.labels == ["person"]
    assert iou_matrix(person(whole), person(right))[0, 0] >= 0.8
    assert right.boxes[0][0] >= 0.4


def test_tf2_output_order_decodes_the_same(detectors, hopper) -> None:
    """TF2 exports give the four outputs in another order: found by shape and values."""
    detector = detectors["ssd"]
    tensors, _ = detector.raw(hopper)
    outputs = outputs_of(detector.interpreter)
    order = [2, 0, 3, 1]  # scores, boxes, count, classes
    shuffled = Decoder([outputs[i] for i in order], detector.size, 0.4)
    assert shuffled.layout.family == POSTPROCESS and shuffled.layout.boxes == 1
    same(shuffled([tensors[i] for i in order]), detector.decoder(tensors))


def test_classes_and_scores_are_told_apart_when_every_score_is_one() -> None:
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6]]], np.float32)
    classes, scores = np.array([[0.0, 17.0]], np.float32), np.array([[1.0, 1.0]], np.float32)
    count = np.array([2.0], np.float32)
    outputs = [
        Output("s", (1, 2), "float32"),
        Output("b", (1, 2, 4), "float32"),
        Output("n", (1,), "float32"),
        Output("c", (1, 2), "float32"),
    ]
    found = Decoder(outputs, (300, 300))([scores, boxes, count, classes])
    assert found.labels.tolist() == [0, 17] and found.scores.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(found.boxes[0], [0.1, 0.1, 0.5, 0.5])  # x, y order swapped


@pytest.fixture(scope="module")
def yolo_raw(detectors, hopper) -> tuple[np.ndarray, Output]:
    """YOLOv8n's own int8 output on Grace Hopper, and its signature."""
    tensors, _ = detectors["yolo"].raw(hopper)
    return tensors[0].copy(), outputs_of(detectors["yolo"].interpreter)[0]


def float_of(raw: np.ndarray, output: Output) -> np.ndarray:
    return (raw.astype(np.float32) - output.zero_point) * np.float32(output.scale)


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.6])
def test_quantized_scores_are_thresholded_like_their_float_values(
    yolo_raw, threshold: float
) -> None:
    raw, output = yolo_raw
    plain = Output(output.name, output.shape, "float32")
    quantized = Decoder([output], (640, 640), threshold)([raw])
    assert len(quantized) >= 1 and quantized.scores.min() >= threshold - 1e-6
    same(quantized, Decoder([plain], (640, 640), threshold)([float_of(raw, output)]))


def test_transposed_raw_output_decodes_the_same(yolo_raw) -> None:
    raw, output = yolo_raw
    flipped = Output(output.name, (1, 8400, 84), output.dtype, output.scale, output.zero_point)
    decoder = Decoder([flipped], (640, 640), 0.3)
    assert decoder.layout == classify_outputs([flipped])
    assert decoder.layout.transposed and decoder.layout.classes == 80
    same(
        decoder([np.ascontiguousarray(raw.transpose(0, 2, 1))]),
        Decoder([output], (640, 640), 0.3)([raw]),
    )


def test_coordinates_in_input_pixels_are_recognised(yolo_raw) -> None:
    raw, output = yolo_raw
    plain = Output(output.name, output.shape, "float32")
    fractions = float_of(raw, output)
    pixels = fractions.copy()
    pixels[0, :4] *= 640
    decoder = Decoder([plain], (640, 640), 0.3)
    same(decoder([pixels]), decoder([fractions]))
    assert len(decoder([pixels])) == 2


def test_float_yolo_finds_the_person_and_tie(tmp_path: Path, hopper) -> None:
    """A float32 detector (float input and output): camapp's own dequantized YOLOv8n."""
    float_model = tmp_path / "yolov8n_float.tflite"
    dequantize_model(YOLO, float_model)
    detector = yolo(model=float_model)
    assert detector.interpreter.get_input_details()[0]["dtype"] == np.float32
    assert detector.decoder.layout.family == RAW
    found = detector(hopper)
    assert found.labels == ["person", "tie"] and found.best("person") >= 0.9


def raw_output(candidates: list[tuple[float, float, float, float, int, float]]) -> np.ndarray:
    """A float [1, 4+3, 64] tensor: cx, cy, w, h (fractions), then 3 class scores; the
    candidates not given score 0 (and there are more candidates than rows, as in any real
    model: that is how [1, 4+C, N] is told from [1, N, 4+C])."""
    tensor = np.zeros((1, 7, 64), np.float32)
    for n, (cx, cy, w, h, label, score) in enumerate(candidates):
        tensor[0, :4, n] = cx, cy, w, h
        tensor[0, 4 + label, n] = score
    return tensor


def test_suppression_is_per_class_and_bounded() -> None:
    tensor = raw_output(
        [
            (0.30, 0.30, 0.2, 0.2, 0, 0.9),  # kept
            (0.31, 0.30, 0.2, 0.2, 0, 0.8),  # the same object, weaker: suppressed
            (0.31, 0.31, 0.2, 0.2, 1, 0.7),  # overlaps, but another class: kept
            (0.80, 0.80, 0.1, 0.1, 2, 0.6),  # elsewhere: kept
            (0.50, 0.50, 0.1, 0.1, 2, 0.2),  # under the threshold
        ]
    )
    outputs = [Output("raw", (1, 7, 64), "float32")]
    found = Decoder(outputs, (320, 320), threshold=0.25)([tensor])
    assert found.labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(found.scores, [0.9, 0.7, 0.6])
    np.testing.assert_allclose(found.boxes[0], [0.2, 0.2, 0.4, 0.4], atol=1e-6)
    assert Decoder(outputs, (320, 320), threshold=0.25, max_detections=2)(
        [tensor]
    ).labels.tolist() == [0, 1]
    assert len(Decoder(outputs, (320, 320), threshold=0.95)([tensor])) == 0


@pytest.mark.parametrize(
    "model",
    [
        "tf2_mobilenet_v2_1.0_224_ptq.tflite",  # a classifier: [1, 1001]
        "deeplabv3_mnv2_pascal_quant.tflite",  # segmentation
        "movenet_single_pose_lightning_ptq.tflite",  # pose keypoints [1, 1, 17, 3]
    ],
)
def test_models_that_are_not_detectors_are_named_in_one_line(model: str) -> None:
    interpreter = Interpreter(model_path=str(SHARED_MODELS / model))
    outputs = outputs_of(interpreter)
    with pytest.raises(ConfigError) as caught:
        classify_outputs(outputs)
    message = str(caught.value)
    assert "\n" not in message and "fit no detector family" in message
    detail = outputs[0]
    assert f"{detail.name[:40]} [{','.join(map(str, detail.shape))}] {detail.dtype}" in message
