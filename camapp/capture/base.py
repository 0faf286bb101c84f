"""The contract every frame source fulfils, so the pipeline never knows which camera it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from camapp.errors import shorten


@dataclass(slots=True)
class Frame:
    """One captured image.

    `image` is HxWx3 uint8 in RGB order, or BGR when `bgr` is set (OpenCV decodes to BGR, and
    swapping channels after the resize to the model input is far cheaper than before it).
    `seq` counts frames delivered by the source from 0, including those the pipeline later
    drops, so gaps in published `frame` numbers show drops.
    `scores` are set by a source that classifies on the sensor (the AI Camera): the workers
    then only rank them, and `inference_ms` is the time the sensor took.
    """

    seq: int
    ts: float  # wall-clock capture time, unix seconds
    image: np.ndarray
    mono: float  # time.monotonic() at capture, for latency measurement
    bgr: bool = False
    scores: np.ndarray | None = None  # the model's output, computed by the source's device
    inference_ms: float = 0.0


def isp_size(frame: tuple[int, int], model_size: int, contain: bool = False) -> tuple[int, int]:
    """The size a Pi camera's ISP (or a memory replay) scales frames of size `frame` to: the
    smallest even size with their aspect whose short side covers `model_size` (a centre crop
    or stretch takes the model input from it), or, with `contain` (a letterboxing model),
    whose long side fits it, so that the letterbox places the frame unscaled. A Pi 4's ISP
    scales lores from the same crop as main, so another aspect would distort."""
    width, height = frame
    side = model_size + model_size % 2  # YUV420 needs even sizes
    scale = side / (max(width, height) if contain else min(width, height))
    return _even(width * scale), _even(height * scale)


def _even(size: float) -> int:
    return max(2, 2 * round(size / 2))


class Source(Protocol):
    """A frame source. `read()` blocks until the next frame; None means the source ended."""

    name: str
    live: bool  # True for cameras and streams: stale frames may be dropped
    paced: bool  # frames come at their own rate: cameras, streams, a replay at its file's rate
    fps: float  # nominal frame rate (0.0 when unknown)

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


def source_name(spec: str) -> str:
    """A camera or stream as every message names it: without its password, on one line, and
    at most SHOWN characters, its start (scheme, host) kept."""
    return shorten(_redact(spec), keep_start=True)


def _redact(spec: str) -> str:
    """A stream URL without its password. Everything up to the last '@' is taken for the
    user info, so a password with a raw '/' or '@' stays hidden too (at worst, so does a
    part of the path)."""
    scheme, sep, rest = spec.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return spec
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
