"""Where the benchmarks find the project and the shared models and clips (../shared)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the scripts run as files: camapp from this checkout
    sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared"
MEDIA = SHARED / "media"
INT8 = SHARED / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
CLIPS = (MEDIA / "car-detection.mp4", MEDIA / "one-by-one-person-detection.mp4")
