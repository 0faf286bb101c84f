"""Tracked objects drawn on a picture: what a detector camera's snapshots show.

Boxes are fractions of the frame, so they are drawn on the picture as it is sent (scaled to
`http.view_width` or not) with lines and text of the same size whatever the source's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import cv2
import numpy as np

from camapp.detect.track import Track

# BGR colours, one per object id in turn, bright enough on dark and light scenes alike.
COLOURS = ((0, 200, 255), (255, 160, 0), (80, 220, 80), (200, 80, 255), (0, 80, 255))
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Drawn(NamedTuple):
    """One object as drawn: a copy of a track's values at one frame, so that another thread
    can draw it while the track moves on."""

    id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, fractions of the frame


def drawn(tracks: Iterable[Track]) -> tuple[Drawn, ...]:
    """The tracks as they are now, to be drawn later."""
    return tuple(
        Drawn(t.id, t.label, t.score, tuple(float(v) for v in t.box))  # type: ignore[arg-type]
        for t in tracks
    )


def draw_objects(image: np.ndarray, objects: Sequence[Drawn]) -> None:
    """Draw each object's box with `label score #id` above it, in place on a BGR image."""
    height, width = image.shape[:2]
    thickness = max(1, round(width / 320))
    scale = max(0.4, width / 1280)
    for obj in objects:
        colour = COLOURS[obj.id % len(COLOURS)]
        x1, y1, x2, y2 = (round(v * s) for v, s in zip(obj.box, (width, height) * 2, strict=True))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        text = f"{obj.label} {obj.score:.2f} #{obj.id}"
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
        top = y1 - th - base if y1 - th - base >= 0 else y1  # inside the box at the top edge
        cv2.rectangle(image, (x1, top), (x1 + tw, top + th + base), colour, cv2.FILLED)
        cv2.putText(image, text, (x1, top + th), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
