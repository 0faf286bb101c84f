"""Detector output tensors to detections, for the two families a `.tflite` detector comes in.

- `postprocess`: the graph ends in `TFLite_Detection_PostProcess` (SSD and its kin): four
  outputs, boxes [1, N, 4] (ymin, xmin, ymax, xmax, fractions), classes [1, N], scores
  [1, N] and count [1]. Exports order them differently (TF1: boxes, classes, scores,
  count; TF2 exports another way), so they are told apart by shape, and classes from scores
  by their values: classes are whole numbers.
- `raw`: one tensor [1, 4+C, N] or its transpose [1, N, 4+C] (YOLOv8; the smaller of the
  two is 4+C, as there are more candidates than classes): cx, cy, w, h (fractions of the
  input, or input pixels: told by their magnitude), then C class scores per candidate,
  with no suppression in the graph: done here, per class.

Everything is vectorised: the raw family's threshold compares the quantized scores
themselves, and only the candidates that pass are dequantized; no Python loop runs over
candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from camapp.errors import ConfigError

POSTPROCESS = "postprocess"
RAW = "raw"
_FAMILIES = (
    "TFLite_Detection_PostProcess (boxes [1,N,4], classes [1,N], scores [1,N], count [1])"
    " or raw YOLO (one [1,4+C,N] or [1,N,4+C])"
)
_SCORES = ("float32", "float16", "int8", "uint8", "int16")  # dtypes a raw output comes in
_PIXELS = 2.0  # box centres beyond this are in input pixels, not fractions


@dataclass(frozen=True, slots=True)
class Output:
    """One output tensor as the model declares it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy's name for it, e.g. "int8"
    scale: float = 0.0  # quantization; 0: the tensor holds floats
    zero_point: int = 0


@dataclass(frozen=True, slots=True)
class Layout:
    """Which family a detector's outputs belong to, and where each part is."""

    family: str  # POSTPROCESS or RAW
    boxes: int = 0  # postprocess: index of the boxes output
    count: int = 0  # postprocess: index of the count output
    pair: tuple[int, int] = (0, 0)  # postprocess: classes and scores, in some order
    transposed: bool = False  # raw: [1, N, 4+C] rather than [1, 4+C, N]
    classes: int = 0  # raw: C; postprocess: unknown (0)


@dataclass(frozen=True, slots=True)
class Detections:
    """One frame's detections, best first; boxes are x1, y1, x2, y2 fractions of the model
    input."""

    labels: np.ndarray  # (n,) int class ids
    scores: np.ndarray  # (n,) float32
    boxes: np.ndarray  # (n, 4) float32

    def __len__(self) -> int:
        return len(self.labels)


NONE = Detections(np.empty(0, np.int64), np.empty(0, np.float32), np.empty((0, 4), np.float32))


def classify_outputs(outputs: Sequence[Output]) -> Layout:
    """The family of a detector's output signature, or a one-line ConfigError naming the
    outputs found (such a model cannot be used as a detector: exit 2)."""
    shapes = [tuple(o.shape) for o in outputs]
    if len(shapes) == 4:
        boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[0] == 1 and s[2] == 4]
        count = [i for i, s in enumerate(shapes) if s == (1,)]
        pair = [i for i, s in enumerate(shapes) if len(s) == 2 and s[0] == 1]
        if len(boxes) == len(count) == 1 and len(pair) == 2:
            n = shapes[boxes[0]][1]
            if shapes[pair[0]][1] == shapes[pair[1]][1] == n:
                return Layout(POSTPROCESS, boxes[0], count[0], (pair[0], pair[1]))
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        rows, cols = shapes[0][1:]
        # 4 box values and at least one class, fewer than the candidates; scores, not ids
        # (a segmentation's [1, H, W] class map is not a detector).
        if 5 <= min(rows, cols) < max(rows, cols) and outputs[0].dtype in _SCORES:
            return Layout(RAW, transposed=rows > cols, classes=min(rows, cols) - 4)
    found = ", ".join(f"{o.name[:40]} [{','.join(map(str, o.shape))}] {o.dtype}" for o in outputs)
    raise ConfigError(f"model outputs fit no detector family ({_FAMILIES}); found: {found[:300]}")


def dequantize(tensor: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float32 values of a tensor (quantized when `scale` is set), vectorised."""
    if not scale or tensor.dtype.kind == "f":
        return tensor.astype(np.float32, copy=False)
    return (tensor.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


class Decoder:
    """Turns one model's output tensors into `Detections`; one per model, no state per frame."""

    def __init__(
        self,
        outputs: Sequence[Output],
        input_size: tuple[int, int],
        threshold: float = 0.25,
        iou: float = 0.45,
        max_detections: int = 100,
    ) -> None:
        """`input_size` is the model's (width, height); `threshold` the minimum score; `iou`
        the overlap above which a raw detector's weaker box of the same class is dropped."""
        self.layout = classify_outputs(outputs)
        self.threshold, self.iou, self.max_detections = threshold, iou, max_detections
        self._size = np.array(input_size * 2, np.float32)
        self._quant = [(o.scale, o.zero_point) for o in outputs]
        self._raw_threshold = (
            _quantized_threshold(threshold, *self._quant[0], np.dtype(outputs[0].dtype))
            if self.layout.family == RAW
            else threshold
        )

    def __call__(self, tensors: Sequence[np.ndarray]) -> Detections:
        """Detections of one frame, from the output tensors in the model's own order."""
        if self.layout.family == RAW:
            return self._raw(tensors[0])
        return self._postprocess(tensors)

    def _postprocess(self, tensors: Sequence[np.ndarray]) -> Detections:
        lay = self.layout
        plain = [dequantize(np.asarray(t), *q) for t, q in zip(tensors, self._quant, strict=True)]
        count = int(plain[lay.count].reshape(-1)[0])
        boxes = plain[lay.boxes][0, :count]
        if not len(boxes):
            return NONE
        classes, scores = _classes_and_scores(
            plain[lay.pair[0]][0, :count], plain[lay.pair[1]][0, :count]
        )
        keep = np.flatnonzero(scores >= self.threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: self.max_detections]
        xyxy = np.clip(boxes[keep][:, [1, 0, 3, 2]], 0.0, 1.0)
        return Detections(np.rint(classes[keep]).astype(np.int64), scores[keep], xyxy)

    def _raw(self, tensor: np.ndarray) -> Detections:
        rows = tensor[0].T if self.layout.transposed else tensor[0]  # (4 + C, N), a view
        scale, zero_point = self._quant[0]
        best = rows[4:].max(axis=0)  # compared while still quantized
        keep = np.flatnonzero(best >= self._raw_threshold)
        if not len(keep):
            return NONE
        labels = rows[4:, keep].argmax(axis=0)
        scores = dequantize(best[keep], scale, zero_point)
        xywh = dequantize(rows[:4, keep], scale, zero_point).T  # a copy: fancy indexing
        if dequantize(rows[:2].max(keepdims=True), scale, zero_point)[0, 0] <= _PIXELS:
            xywh = xywh * self._size  # fractions: suppress in pixels, where IoU is true
        xywh[:, :2] -= xywh[:, 2:] / 2  # centre to corner
        kept = cv2.dnn.NMSBoxesBatched(
            np.ascontiguousarray(xywh),
            scores,
            labels.astype(np.int32),
            self.threshold,
            self.iou,
        )  # best first; its top_k would cut the candidates before suppression, not after
        kept = np.asarray(kept, np.int64).reshape(-1)[: self.max_detections]
        xyxy = xywh[kept].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        return Detections(
            labels[kept].astype(np.int64), scores[kept], np.clip(xyxy / self._size, 0.0, 1.0)
        )


def _quantized_threshold(threshold: float, scale: float, zero_point: int, dtype: np.dtype) -> float:
    """The score threshold in the tensor's own units, so that candidates are picked without
    dequantizing 8400 x C scores: the smallest quantized value whose score reaches it."""
    if not scale or dtype.kind == "f":
        return threshold
    info = np.iinfo(dtype)
    return float(min(max(np.ceil(threshold / scale + zero_point - 1e-6), info.min), info.max + 1))


def _classes_and_scores(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tell the classes output from the scores: class ids are whole numbers. When both are
    (every score exactly 0 or 1), the scores are the one within [0, 1] sorted high to low."""
    whole_a, whole_b = bool(np.all(a == np.rint(a))), bool(np.all(b == np.rint(b)))
    if whole_a != whole_b:
        return (a, b) if whole_a else (b, a)
    a_scores = a.min() >= 0 and a.max() <= 1 and bool(np.all(np.diff(a) <= 0))
    return (b, a) if a_scores else (a, b)
