"""The two real COCO detectors of ../shared/models, run with LiteRT's interpreter directly,
their outputs decoded by camapp.detect: what the detection tests look at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from camapp import models
from camapp.detect.decode import Decoder, Detections, Output
from camapp.detect.labels import class_names
from camapp.detect.letterbox import Geometry, fit, place, to_frame
from camapp.detect.track import Tracker
from camapp.detect.zones import CountDebouncer, count
from camapp.inference.backend import InputSpec
from camapp.inference.preprocess import Roi, quantize_lut, region
from camapp.models.labels import read_labels
from camapp.training.clip import clip_frames, frame_labels
from tests.conftest import SHARED, SHARED_MEDIA, SHARED_MODELS

SSD = SHARED_MODELS / "ssd_mobilenet_v1_coco_quant_detect.tflite"
SSD_LABELS = SHARED_MODELS / "ssd_mobilenet_v1_coco_labelmap.txt"
YOLO = SHARED_MODELS / "yolov8n_coco_full_integer_quant.tflite"
YOLO_LABELS = SHARED_MODELS / "yolov8n_coco_labels.txt"
CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
RANGES = SHARED / "datasets" / "one-by-one-person-occupancy.json"


@dataclass(frozen=True, slots=True)
class Found:
    """One frame's detections: names, scores, boxes as fractions of the frame."""

    labels: list[str]
    scores: np.ndarray
    boxes: np.ndarray

    def best(self, label: str) -> float:
        """The top score of `label` (0 when it was not found)."""
        return max(
            (float(s) for n, s in zip(self.labels, self.scores, strict=True) if n == label),
            default=0,
        )


def fetched(folder: Path, *names: str) -> Path:
    """`folder` with the named zoo models (and their labels files) fetched from ../shared
    and verified, as `camapp model fetch --mirror` does."""
    for name in names:
        models.fetch(name, folder, mirror=SHARED_MODELS)
    return folder


def outputs_of(interpreter: Interpreter) -> list[Output]:
    """The model's output signature, as the decoder reads it."""
    return [
        Output(
            d["name"],
            tuple(int(v) for v in d["shape"]),
            np.dtype(d["dtype"]).name,
            float(d["quantization"][0]),
            int(d["quantization"][1]),
        )
        for d in interpreter.get_output_details()
    ]


class Detector:
    """A detector model, its labels and its preprocessing (plain resize into
    (pixel - 127.5) / 127.5 for the SSD, letterbox into pixel / 255 for YOLOv8), as the
    pipeline will run it; quantized or float input."""

    def __init__(
        self, model: Path, labels: Path, letterbox: bool, threshold: float, mean: float, std: float
    ) -> None:
        self.interpreter = Interpreter(model_path=str(model), num_threads=2)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        _, height, width, _ = detail["shape"]
        self.size = (int(width), int(height))
        self.letterbox = letterbox
        self.decoder = Decoder(outputs_of(self.interpreter), self.size, threshold)
        classes = self.decoder.layout.classes or None
        self.names = class_names(read_labels(model, labels), classes, labels.name)
        scale, zero_point = detail["quantization"]
        dtype = np.dtype(detail["dtype"])
        spec = InputSpec(int(height), int(width), dtype, scale, zero_point, (mean,), (std,))
        # Quantized input: a 256-entry table (None: the raw pixel is the input); float: sums.
        self._lut = quantize_lut(spec) if dtype.kind != "f" else None
        self._normal = (mean, std) if dtype.kind == "f" else None
        self._input = detail["index"]
        self._pixels = np.empty((int(height), int(width), 3), np.uint8)

    def raw(self, rgb: np.ndarray, roi: Roi | None = None) -> tuple[list[np.ndarray], Geometry]:
        """Run the model on an RGB frame: (its output tensors, the geometry)."""
        rows, cols = region(rgb.shape, self.size, "stretch", roi)
        geometry = fit(rgb.shape, (rows, cols), self.size, self.letterbox)
        place(rgb[rows, cols], geometry, self._pixels)
        pixels = self._pixels if self._lut is None else self._lut[self._pixels]
        if self._normal is not None:
            pixels = (pixels.astype(np.float32) - self._normal[0]) / self._normal[1]
        self.interpreter.set_tensor(self._input, pixels[None])
        self.interpreter.invoke()
        tensors = [
            self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()
        ]
        return tensors, geometry

    def __call__(self, rgb: np.ndarray, roi: Roi | None = None) -> Found:
        tensors, geometry = self.raw(rgb, roi)
        return self.found(self.decoder(tensors), geometry)

    def found(self, detections: Detections, geometry: Geometry) -> Found:
        """Detections with their names, boxes mapped back to the frame."""
        names = [self.names[i] for i in detections.labels]
        return Found(names, detections.scores, to_frame(detections.boxes, geometry))


def ssd(threshold: float = 0.4, model: Path = SSD) -> Detector:
    """The SSD (or its float32 twin) at the reference threshold."""
    return Detector(model, SSD_LABELS, False, threshold, mean=127.5, std=127.5)


def yolo(threshold: float = 0.3, model: Path = YOLO) -> Detector:
    """YOLOv8n (or its float32 twin) at the reference threshold."""
    return Detector(model, YOLO_LABELS, True, threshold, mean=0.0, std=255.0)


def judged_frames(truth: dict[int, str], window: int = 10) -> set[int]:
    """The labelled frames of an occupancy ranges file outside `window` frames (1 s of the
    person clip) after each change, which falls in the middle of the 8 unlabelled frames
    before each range."""
    changes = [i - 4 for i in truth if i - 1 not in truth and i > 0]
    return {i for i in truth if not any(c <= i < c + window for c in changes)}


def occupancy(
    detector: Detector, stride: int, tracker: Tracker, debounce: CountDebouncer
) -> tuple[dict[str, float], int]:
    """The person clip through `detector` (every `stride`-th frame), its persons through the
    tracker and the debounce: the share of judged frames on which the raw, the tracked and
    the debounced person count equal the truth (one person or none), and beside them
    ("plain") that of the raw count through a plain 3-frame debounce, which the tracker must
    not lose to; and how many person tracks were announced. Judged: the labelled frames
    outside 1 s (10 frames) after each change, which falls in the middle of the 8
    unlabelled frames before each range."""
    truth = frame_labels(RANGES)
    judged = judged_frames(truth)
    right = {"raw": 0, "plain": 0, "tracked": 0, "debounced": 0}
    plain = CountDebouncer(3)
    tracks = seen = 0
    for i, frame in clip_frames(CLIP, stride=stride):
        found = detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        keep = [k for k, label in enumerate(found.labels) if label == "person"]
        labels = ["person"] * len(keep)
        events = tracker.update(i, i / 10, found.boxes[keep], found.scores[keep], labels)
        tracks += sum(e.type == "new" for e in events)
        counts = count(((t.label, t.zones) for t in tracker.tracks), ["person"], [])
        state = debounce.update(i, counts) or debounce.state
        raw = plain.update(i, count([("person", ())] * len(keep), ["person"], [])) or plain.state
        if i in judged:
            want = int(truth[i] == "person")
            seen += 1
            right["raw"] += len(keep) == want
            right["tracked"] += counts.labels["person"] == want
            right["debounced"] += state is not None and state.counts.labels["person"] == want
            right["plain"] += raw is not None and raw.counts.labels["person"] == want
    return {k: v / seen for k, v in right.items()}, tracks
