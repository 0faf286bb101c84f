"""A detector beside the `Classifier`: one LiteRT interpreter, the preprocessing its family
expects and camapp.detect's decoding, with boxes as fractions of the whole frame.

The family decides the preprocessing (docs/detection.md): a raw (YOLO) detector sees the
region letterboxed with grey 114 and pixels / 255, a TFLite_Detection_PostProcess (SSD) one
the region stretched to its input and (pixel - 127.5) / 127.5; a model's metadata overrides
the normalisation. Float or quantized input comes from the input tensor itself, so any model
of either family runs from the file alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from camapp.detect.decode import RAW, Decoder, Detections, Layout, Output, classify_outputs
from camapp.detect.letterbox import Geometry, fit, place, resizer_for, to_frame
from camapp.devices import Devices
from camapp.errors import CamappError, ConfigError, shorten
from camapp.inference import backend as backends
from camapp.inference.backend import BackendSettings
from camapp.inference.classifier import Classifier
from camapp.inference.preprocess import Preprocessor, Roi, region
from camapp.resize import Resizer
from camapp.tflite.modelfile import ModelFile

# (mean, std) each family was trained with, when the model's metadata does not say.
NORMALISATION = {RAW: ((0.0,), (255.0,)), "postprocess": ((127.5,), (127.5,))}
Box = tuple[float, float, float, float]
View = tuple[slice, slice, Geometry]  # the rows and columns the model sees, fitted so


# Crops classified in one frame at most: detect-then-classify costs a bounded time a frame.
MAX_CROPS = 10


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: Box  # x1, y1, x2, y2 as fractions of the whole frame
    guess: tuple[str, float] | None = None  # its crop's class and score, when classified


@dataclass(frozen=True, slots=True)
class DetectionResult:
    objects: list[Detection]  # best first
    inference_ms: float
    model: str  # which model answered

    @property
    def counts(self) -> dict[str, int]:
        """Objects per label, most first."""
        return dict(Counter(o.label for o in self.objects).most_common())


@dataclass(frozen=True, eq=False)
class DetectorSpec:
    """Everything checked about a detector before capture: its family, class names and how
    its input is prepared; `loader.load_detector()` makes a Detector of it."""

    path: Path
    name: str  # the manifest name, else the file stem
    names: tuple[str, ...]  # the name of each class id
    layout: Layout
    outputs: tuple[Output, ...]  # in the model's own order
    mean: tuple[float, ...]
    std: tuple[float, ...]
    options: BackendSettings
    min_score: float
    min_area: float  # fraction of the frame a box must cover
    min_scores: tuple[tuple[str, float], ...] = ()  # per label, instead of min_score

    @property
    def threshold(self) -> float:
        """What the decoder keeps: the least of the scores asked for; `Detector` then holds
        each label to its own."""
        return min([self.min_score, *(score for _, score in self.min_scores)])

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for specs whose detectors a worker may share (the pool's caches are keyed
        by it, as by `ModelSetup.key`)."""
        return (self.path, self.names, self.options, self.mean, self.std, self.min_score,
                self.min_area, self.min_scores)  # fmt: skip

    @property
    def letterbox(self) -> bool:
        """YOLO models are trained on letterboxed images; SSDs on stretched ones."""
        return self.layout.family == RAW


def outputs(path: Path, options: BackendSettings) -> list[Output]:
    """The model's outputs as the decoder reads them, from an interpreter: a PostProcess
    op's outputs have no shapes in the file, only once the interpreter has allocated them."""
    interpreter = backends.create("litert", path, options, Devices()).interpreter
    return [
        Output(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name,
               float(d["quantization"][0]), int(d["quantization"][1]))
        for d in interpreter.get_output_details()
    ]  # fmt: skip


def layout(file: ModelFile, found: list[Output]) -> Layout:
    """The detector family of a model, or one line (exit 2) naming the outputs it found."""
    family = classify_outputs(found)
    if file.kind != "detector":  # outputs of a detector's shape, but not on one image
        raise ConfigError(f"{shorten(file.path)} is not an image detector: {file.why}")
    return family


def normalisation(file: ModelFile, family: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's metadata's (mean, std), else its family's."""
    mean, std = NORMALISATION[family]
    return file.info.mean or mean, file.info.std or std


class Detector:
    """One interpreter, its preprocessor and decoder. Not thread-safe: each worker owns one."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.model = spec.name
        backend = backends.create("litert", spec.path, spec.options, Devices())
        interpreter = backend.interpreter
        self.size = (backend.input.width, backend.input.height)
        self.preprocess = Preprocessor(replace(backend.input, mean=spec.mean, std=spec.std))
        self._placed = np.empty((self.size[1], self.size[0], 3), np.uint8)
        self._input = backend.input_tensor
        self._invoke = backend.invoke
        # Views of its output buffers, in the model's order (the spec's `outputs`).
        self._outputs = [interpreter.tensor(d["index"]) for d in interpreter.get_output_details()]
        self.decoder = Decoder(spec.outputs, self.size, spec.threshold)
        # The least score of each class id (a label's own, else min_score); the last entry
        # stands for the ids beyond the names (reported by number).
        own = dict(spec.min_scores)
        least = [own.get(name, spec.min_score) for name in spec.names]
        self._least = np.array([*least, spec.min_score])
        self._view_of: tuple[tuple[tuple[int, ...], Roi | None], View] | None = None
        self._resizer: Resizer | None = None  # the region's, kept from frame to frame

    def detect(
        self, image: np.ndarray, bgr: bool = False, roi: Roi | None = None
    ) -> DetectionResult:
        """The objects in `image` (HxWx3) or in its region of interest, boxes as fractions of
        the whole image, at least `min_score` and `min_area`."""
        geometry = self.prepare(image, bgr, roi)
        start = time.perf_counter()
        try:
            self._invoke()
        except RuntimeError as exc:
            raise CamappError(f"inference failed: {exc}") from None
        inference_ms = (time.perf_counter() - start) * 1000
        found = self.decoder([tensor() for tensor in self._outputs])
        return DetectionResult(self._named(found, geometry), inference_ms, self.model)

    def prepare(self, image: np.ndarray, bgr: bool = False, roi: Roi | None = None) -> Geometry:
        """Fill the model's input from `image` (its region, fitted): all `detect` does before
        the invoke; the benchmarks take the inputs the bare interpreter runs on from it."""
        rows, cols, geometry = self._view(image.shape, roi)
        cut = image[rows, cols]
        self._resizer = resizer_for(cut.shape, geometry, self._resizer)
        place(cut, geometry, self._placed, self._resizer)
        self.preprocess(self._placed, bgr, self.input, "stretch")
        return geometry

    @property
    def input(self) -> np.ndarray:
        """The model's input tensor (HxWx3), as `prepare` left it."""
        return self._input()[0]

    def _view(self, shape: tuple[int, ...], roi: Roi | None) -> View:
        """The pixels a frame size and ROI give the model, and how they fit: worked out once
        for a camera's frames (the last one kept: image files each come in their own size)."""
        key = (shape, roi)
        if self._view_of is None or self._view_of[0] != key:
            rows, cols = region(shape, self.size, "stretch", roi)
            geometry = fit(shape, (rows, cols), self.size, self.spec.letterbox)
            self._view_of = (key, (rows, cols, geometry))
        return self._view_of[1]

    def _named(self, found: Detections, geometry: Geometry) -> list[Detection]:
        """Boxes back to the frame, small ones dropped, class ids named."""
        boxes = to_frame(found.boxes, geometry)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        least = self._least[np.minimum(found.labels, len(self._least) - 1)]
        keep = np.flatnonzero((areas >= self.spec.min_area) & (found.scores >= least))
        names = self.spec.names
        return [
            Detection(
                names[i] if i < len(names) else str(i),
                round(s, 4),
                tuple(round(v, 4) for v in box),  # type: ignore[arg-type]
            )
            for i, s, box in zip(
                found.labels[keep].tolist(),
                found.scores[keep].tolist(),
                boxes[keep].tolist(),
                strict=True,
            )
        ]


def classify_crops(
    result: DetectionResult,
    image: np.ndarray,
    bgr: bool,
    classifiers: Mapping[str, tuple[Classifier, str]],
) -> DetectionResult:
    """Detect, then classify: each object of a label that has a classifier (and how it fits
    its crop in, "stretch" or "center") gets the best class of its box's crop as its `guess`,
    through the classifier's own preprocessing (the box is its region of interest); at most
    MAX_CROPS a frame, best first. Their invokes add to the result's inference time."""
    objects, spent, done = list(result.objects), result.inference_ms, 0
    height, width = image.shape[:2]
    for i, found in enumerate(objects):
        chosen = classifiers.get(found.label)
        x1, y1, x2, y2 = found.box
        if chosen is None or done >= MAX_CROPS or min((x2 - x1) * width, (y2 - y1) * height) < 2:
            continue  # a box under 2 px a side has no crop worth a class
        classifier, crop = chosen
        answer = classifier.classify(image, bgr, crop, found.box)
        best = answer.top_k[0]
        objects[i] = replace(found, guess=(best.label, best.score))
        spent, done = spent + answer.inference_ms, done + 1
    return replace(result, objects=objects, inference_ms=spent) if done else result
