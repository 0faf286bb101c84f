"""A backend plus what every backend shares: preprocessing into its input, labelled top-k out."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from camapp.errors import CamappError, ConfigError
from camapp.inference.backend import Backend
from camapp.inference.preprocess import Preprocessor
from camapp.tflite import graph


@dataclass(frozen=True, slots=True)
class Prediction:
    class_id: int
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Classification:
    top_k: list[Prediction]  # best first
    inference_ms: float
    model: str  # which model answered (a camera may switch models while it runs)


class Classifier:
    """One backend and its preprocessor. Not thread-safe: each worker owns one.

    The preprocessor writes straight into the backend's input tensor and only the top-k scores
    are dequantized, so a frame costs no allocation beyond its small result.
    """

    def __init__(
        self,
        backend: Backend,
        labels: list[str],
        model: str,
        top_k: int = 5,
        label_offset: int | None = None,
        normalisation: tuple[tuple[float, ...] | None, tuple[float, ...] | None] = (None, None),
    ) -> None:
        # 0: the scores come with each frame (a sensor that classifies), and are checked there.
        classes = backend.output.classes or len(labels)
        if label_offset is None:  # not a TFLite file camapp could read before loading
            label_offset = graph.label_offset(model, labels, classes)
        if len(labels) - label_offset != classes:
            raise ConfigError(
                f"model {model} has {classes} classes but the labels have {len(labels)}"
            )
        # 1: labels[0] is a background class the model was trained without.
        self._label_offset = label_offset
        self.backend = backend
        self.labels = labels
        self.model = model
        self.top_k = max(1, min(top_k, classes))
        spec = backend.input
        mean, std = normalisation  # None: as the backend read it from the model
        spec = replace(spec, mean=mean or spec.mean, std=std or spec.std)
        self.preprocess = Preprocessor(spec)
        self.size = (backend.input.width, backend.input.height)
        self._input = backend.input_tensor
        self._invoke = backend.invoke
        self._output = backend.output_tensor
        self._out_scale, self._out_zero = backend.output.scale, backend.output.zero_point
        # Every 8-bit score's published value, computed once: a frame then dequantizes and
        # rounds its top-k by lookups, without numpy temporaries or round() per score.
        self._score_of = quantized_scores(backend.output.scale, backend.output.zero_point)

    def classify(
        self,
        image: np.ndarray,
        bgr: bool = False,
        crop: str = "center",
        roi: tuple[float, float, float, float] | None = None,
    ) -> Classification:
        # Views into the backend's buffers must be gone before invoke(), or LiteRT refuses.
        self.preprocess(image, bgr, self._input()[0], crop, roi)
        start = time.perf_counter()
        try:
            self._invoke()
        except RuntimeError as exc:
            raise CamappError(f"inference failed: {exc}") from None
        inference_ms = (time.perf_counter() - start) * 1000
        top = self._top(self._output()[0], self._label_offset)
        return Classification(top, inference_ms, self.model)

    def rank(self, scores: np.ndarray, inference_ms: float) -> Classification:
        """Scores a device computed (the AI Camera's, one frame's) ranked like the backend's.

        Such a network's output may or may not have the background class: the labels are
        matched to each frame's score count, as picamera2's classification demo does.
        """
        offset = len(self.labels) - scores.shape[-1]
        if offset not in (0, 1):
            raise CamappError(
                f"model {self.model}: {scores.shape[-1]} scores but {len(self.labels)} labels"
            )
        return Classification(self._top(scores, offset), inference_ms, self.model)

    def _top(self, scores: np.ndarray, offset: int) -> list[Prediction]:
        # ndarray methods and tolist(): this runs per frame holding the GIL, and numpy's
        # module-level wrappers and per-element int()/float() triple its Python calls.
        k = self.top_k
        best = scores.argpartition(-k)[-k:]
        best = best[scores[best].argsort()[::-1]]
        labels = self.labels
        if self._score_of is not None and scores.itemsize == 1:
            score_of = self._score_of
            return [
                Prediction(i, labels[i + offset], score_of[v])
                for i, v in zip(best.tolist(), scores[best].tolist(), strict=True)
            ]
        values = scores[best].astype(np.float64)
        if self._out_scale:
            values = (values - self._out_zero) * self._out_scale
        return [
            Prediction(i, labels[i + offset], round(v, 4))
            for i, v in zip(best.tolist(), values.tolist(), strict=True)
        ]


def quantized_scores(scale: float, zero_point: int) -> dict[int, float] | None:
    """The published score of each 8-bit output value (uint8 and int8 alike), or None for an
    output that is not quantized."""
    if not scale:
        return None
    zero, step = float(zero_point), float(scale)
    return {v: round((v - zero) * step, 4) for v in range(-128, 256)}
