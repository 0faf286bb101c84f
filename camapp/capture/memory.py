"""Frames held in memory, already scaled: what a Pi camera's ISP hands over, without the camera.

`memory:FILE` decodes up to MAX_FRAMES of a video once, scales each to the size a Pi camera's
lores stream would have (`isp_size`: just covering the model input, or fitting in it for a
letterboxing model), and replays them as fast as they are taken, so
that a benchmark measures camapp's own cost per frame with decoding and scaling out of it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import cv2
import numpy as np

from camapp.capture.base import Frame, isp_size
from camapp.capture.opencv import FileSource

MAX_FRAMES = 200  # ~60 MB at 398x224: the Pi-like bench replays them in a loop


class MemorySource:
    live = False
    paced = False
    fps = 0.0

    def __init__(
        self, path: str, model_size: int, loop: bool = False, contain: bool = False
    ) -> None:
        self._frames = _frames(path, model_size, contain)
        self.name = f"memory:{Path(path).name}"
        self.loop = loop
        self._seq = 0

    def read(self) -> Frame | None:
        index = self._seq % len(self._frames) if self.loop else self._seq
        if index >= len(self._frames):
            return None
        frame = Frame(self._seq, time.time(), self._frames[index], time.monotonic())
        self._seq += 1
        return frame

    def close(self) -> None:
        """Nothing to release: the frames go with the source."""


@functools.lru_cache(maxsize=4)
def _frames(path: str, model_size: int, contain: bool) -> tuple[np.ndarray, ...]:
    """Decoded once per process: the cameras of one file (the bench's rows of up to 8
    cameras) share its frames, which no one writes."""
    video = FileSource(path, realtime=False)
    frames = []
    try:
        while len(frames) < MAX_FRAMES and (frame := video.read()) is not None:
            h, w = frame.image.shape[:2]
            size = isp_size((w, h), model_size, contain)
            small = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    finally:
        video.close()
    return tuple(frames)
