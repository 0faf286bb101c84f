"""The Detector the loader plans from a model file alone: the two real COCO detectors of
../shared/models (and float, reordered and transposed variants made from them with
camapp.tflite.edit) on the real photos and the person clip, boxes back in the frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from camapp.detect.decode import POSTPROCESS, RAW
from camapp.detect.track import iou_matrix
from camapp.errors import ConfigError
from camapp.inference import loader
from camapp.inference.detector import DetectionResult, Detector
from camapp.tflite import edit
from camapp.tflite.dequantize import dequantize_model
from camapp.tflite.modelfile import open_model
from camapp.training.clip import clip_frames
from tests.conftest import SHARED_MEDIA, SHARED_MODELS
from tests.detect_helpers import CLIP, SSD, YOLO, YOLO_LABELS, ssd, yolo

PEOPLE = {100: 1, 400: 1, 700: 0, 1000: 1, 1300: 1}  # frame -> persons in view
THRESHOLD = {"ssd": 0.4, "yolo": 0.3}  # the reference answers' (../shared/README.md)
MODEL = {"ssd": SSD, "yolo": YOLO}


def load(path: Path, labels: str | None = None, min_area: float = 0.0, name: str = "yolo"):
    spec = loader.plan_detector(str(path), labels, min_score=THRESHOLD[name], min_area=min_area)
    return loader.load_detector(spec)


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    """Both detectors, planned from the file alone: labels from the manifest's file beside
    each (the SSD's label map with ??? first, YOLOv8n's plain list)."""
    return {name: load(MODEL[name], name=name) for name in MODEL}


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return cv2.imread(str(SHARED_MEDIA / "grace_hopper.bmp"))  # BGR, as capture gives frames


@pytest.fixture(scope="module")
def clip() -> dict[int, np.ndarray]:
    return {i: f for i, f in clip_frames(CLIP, last=max(PEOPLE)) if i in PEOPLE}


def labels(result: DetectionResult) -> list[str]:
    return [o.label for o in result.objects]


def test_the_loader_plans_each_family_from_the_file(detectors) -> None:
    ssd_spec, yolo_spec = detectors["ssd"].spec, detectors["yolo"].spec
    assert (ssd_spec.layout.family, ssd_spec.letterbox) == (POSTPROCESS, False)
    assert (yolo_spec.layout.family, yolo_spec.letterbox) == (RAW, True)
    assert ssd_spec.names[:2] == ("person", "bicycle") and ssd_spec.names[11] == "???"
    assert len(yolo_spec.names) == 80 and yolo_spec.names[:2] == ("person", "bicycle")
    assert (ssd_spec.name, yolo_spec.name) == ("ssd_mobilenet_v1_coco", "yolov8n_coco")
    assert (ssd_spec.mean, yolo_spec.std) == ((127.5,), (255.0,))


@pytest.mark.parametrize(("name", "person"), [("ssd", 0.7), ("yolo", 0.9)])
def test_grace_hopper_is_a_person_with_a_tie(detectors, hopper, name: str, person: float) -> None:
    result = detectors[name].detect(hopper, bgr=True)
    assert labels(result)[0] == "person" and result.objects[0].score >= person
    assert sum(result.counts.values()) == len(result.objects) and "tie" in result.counts
    body, tie = result.objects[0].box, result.objects[labels(result).index("tie")].box
    assert body[0] < tie[0] < tie[2] < body[2] and body[1] < tie[1] < tie[3] <= body[3]
    assert result.model == detectors[name].spec.name and result.inference_ms > 0


@pytest.mark.parametrize("name", ["ssd", "yolo"])
def test_same_detections_as_the_reference_pipeline(detectors, hopper, name: str) -> None:
    """tests/detect_helpers runs each model by hand (LUT, letterbox): the same objects."""
    reference = {"ssd": ssd, "yolo": yolo}[name]()(cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB))
    result = detectors[name].detect(hopper, bgr=True)
    assert labels(result) == reference.labels
    np.testing.assert_allclose([o.score for o in result.objects], reference.scores, atol=1e-3)
    np.testing.assert_allclose([o.box for o in result.objects], reference.boxes, atol=1e-3)


@pytest.mark.parametrize("name", ["ssd", "yolo"])
@pytest.mark.parametrize("index", sorted(PEOPLE))
def test_clip_frames_have_the_people_in_view(detectors, clip, name: str, index: int) -> None:
    result = detectors[name].detect(clip[index], bgr=True)
    assert result.counts.get("person", 0) == PEOPLE[index]


@pytest.mark.parametrize("name", ["ssd", "yolo"])
def test_a_region_of_interest_maps_back_to_the_whole_frame(detectors, clip, name: str) -> None:
    """Seen through the right 60 % of the frame, the person is where the whole frame has
    them, and the SSD's `tv` on the dark window at the left is out of view."""
    whole = detectors[name].detect(clip[1000], bgr=True)
    right = detectors[name].detect(clip[1000], bgr=True, roi=(0.4, 0.0, 1.0, 1.0))
    assert labels(right) == ["person"]
    person = [r.objects[labels(r).index("person")].box for r in (whole, right)]
    assert iou_matrix(np.array([person[0]]), np.array([person[1]]))[0, 0] >= 0.8
    assert right.objects[0].box[0] >= 0.4


def test_both_families_put_the_person_at_the_same_place(detectors, clip) -> None:
    """The SSD stretches the frame, YOLOv8n letterboxes it: mapped back, the boxes agree."""
    boxes = [np.array([detectors[n].detect(clip[400], True).objects[0].box]) for n in MODEL]
    assert iou_matrix(boxes[0], boxes[1])[0, 0] >= 0.8


def test_small_boxes_are_left_out(hopper) -> None:
    """The tie covers under 2 % of the photo, the person most of it."""
    result = load(YOLO, min_area=0.02).detect(hopper, bgr=True)
    assert labels(result) == ["person"]


def test_a_float_detector_runs_from_the_file_alone(tmp_path: Path, hopper) -> None:
    """A float32 YOLOv8n (float input and output; camapp's own dequantize)."""
    float_model = tmp_path / "yolov8n_float.tflite"
    dequantize_model(YOLO, float_model)
    detector = load(float_model, str(YOLO_LABELS))
    assert detector.preprocess.dtype == np.float32
    result = detector.detect(hopper, bgr=True)
    assert labels(result) == ["person", "tie"] and result.objects[0].score >= 0.9


def test_another_output_order_decodes_the_same(detectors, tmp_path: Path, hopper) -> None:
    """The SSD with its outputs in a TF2 export's order (scores, boxes, count, classes)."""
    model = open_model(SSD).editable()
    graph = model.subgraphs[0]
    graph.outputs = [int(graph.outputs[i]) for i in (2, 0, 3, 1)]
    shuffled = tmp_path / "ssd_tf2_order.tflite"
    shuffled.write_bytes(edit.serialize(model))
    detector = load(shuffled, str(SSD.with_name("ssd_mobilenet_v1_coco_labelmap.txt")), name="ssd")
    assert detector.spec.layout.boxes == 1
    result = detector.detect(hopper, True)
    assert result.objects == detectors["ssd"].detect(hopper, True).objects
    assert labels(result)[:1] == ["person"]


def transposed(path: Path) -> None:
    """YOLOv8n with a TRANSPOSE appended: one [1, 8400, 84] output, as other exports give."""
    model = open_model(YOLO).editable()
    graph = model.subgraphs[0]
    raw = int(graph.outputs[0])
    scale, zero_point = edit.quant_params(graph.tensors[raw])
    order = np.array([0, 2, 1], np.int32)
    perm = edit.add_tensor(model, "perm", [3], np.dtype(np.int32), [], [], order)
    out = edit.add_tensor(model, "out", [1, 8400, 84], np.dtype(np.int8), [scale], [zero_point])
    options = (schema.BuiltinOptions.TransposeOptions, schema.TransposeOptionsT())
    edit.add_op(model, edit.Op.TRANSPOSE, 1, [raw, perm], [out], options)
    graph.outputs = [out]
    path.write_bytes(edit.serialize(model))


def test_a_transposed_raw_output_decodes_the_same(detectors, tmp_path: Path, clip) -> None:
    path = tmp_path / "yolov8n_transposed.tflite"
    transposed(path)
    detector = load(path, str(YOLO_LABELS))
    assert detector.spec.layout.transposed and detector.spec.layout.classes == 80
    for frame in (clip[400], clip[700]):
        result = detector.detect(frame, True)
        assert result.objects == detectors["yolo"].detect(frame, True).objects


def test_labels_that_do_not_fit_and_models_that_detect_nothing_are_refused() -> None:
    with pytest.raises(ConfigError, match="has 1001 lines but the model has 80 classes"):
        loader.plan_detector(str(YOLO), str(SHARED_MODELS / "imagenet_labels.txt"))
    with pytest.raises(ConfigError, match=r"fit no detector family.*found: .* \[1,1001\] uint8"):
        loader.plan_detector(str(SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"))


def test_an_ultralytics_export_names_its_own_classes(tmp_path: Path, hopper) -> None:
    """YOLOv8n alone in a folder (no labels file beside it): the names come from the
    metadata Ultralytics appends to its exports."""
    alone = tmp_path / "my_detector.tflite"
    alone.write_bytes(YOLO.read_bytes())
    assert open_model(alone).labels == tuple(YOLO_LABELS.read_text().splitlines())
    result = load(alone).detect(hopper, True)
    assert labels(result) == ["person", "tie"] and result.model == "my_detector"


def test_a_camera_s_frames_are_resized_with_one_kept_resizer(detectors, clip) -> None:
    """Frame after frame of one size, the detector resizes with the Resizer it keeps: a numpy
    resize made anew per frame (arm64 with OpenCV 5) allocated its 3-4 MB of buffers each
    time. A frame of another size gets its own; one placed unscaled needs none."""
    ssd = detectors["ssd"]
    first, second = list(clip.values())[:2]
    ssd.detect(first, bgr=True)
    kept = ssd._resizer
    assert kept is not None
    ssd.detect(second, bgr=True)
    assert ssd._resizer is kept
    ssd.detect(cv2.resize(first, (640, 360)), bgr=True)
    assert ssd._resizer is not kept and ssd._resizer.shape[:2] == (360, 640)
    ssd.detect(np.zeros((300, 300, 3), np.uint8), bgr=True)
    assert ssd._resizer is None
