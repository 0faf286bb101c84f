"""The motion gate: skip inference while the scene has not changed since the last classification.

A frame is compared with the last frame that was let through, on a tiny grayscale copy (about
32 pixels wide, built from a strided view so it costs tens of microseconds even for 1080p).
Comparing with the last frame let through rather than the previous one means a slow change
(a cloud, a car creeping in) still adds up and passes. A forced refresh every `refresh`
seconds keeps the published state from ever going stale. After each change or refresh the
next `follow` frames pass too, so the debounced state (which wants several agreeing
classifications) can confirm a new scene at once instead of one refresh at a time.
"""

from __future__ import annotations

import cv2
import numpy as np

TINY_WIDTH = 32


class MotionGate:
    """Owned by the capture thread; `changed()` is called once per frame that passed the stride."""

    def __init__(self, threshold: float, refresh: float, follow: int = 0) -> None:
        self.threshold = threshold  # mean absolute difference, in grey levels (0-255)
        self.refresh = refresh
        self.follow = follow
        self._ref: np.ndarray | None = None
        self._ref_time = 0.0
        self._following = 0  # frames still to pass after the last change

    def changed(self, image: np.ndarray, now: float) -> bool:
        """True (and the frame becomes the reference) when it differs enough, or is due."""
        tiny = tiny_gray(image)
        if (
            self._ref is None
            or self._ref.shape != tiny.shape
            or now - self._ref_time >= self.refresh
            or float(cv2.absdiff(tiny, self._ref).mean()) >= self.threshold
        ):
            self._ref, self._ref_time = tiny, now
            self._following = self.follow
            return True
        if self._following:
            self._following -= 1
            return True
        return False


def tiny_gray(image: np.ndarray) -> np.ndarray:
    """About TINY_WIDTH pixels wide, grayscale; channel order does not matter for a difference."""
    height, width = image.shape[:2]
    step = max(1, width // (TINY_WIDTH * 2))
    small = np.ascontiguousarray(image[::step, ::step])
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    size = (TINY_WIDTH, max(1, round(TINY_WIDTH * height / width)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
