"""OpenCV's process-wide settings, made once at start-up, before the first capture opens.

Importing camapp changes nothing: OpenCV and its FFmpeg read these when a capture opens (the
FFmpeg log level when the first one does), so the command line sets them up explicitly.
"""

from __future__ import annotations

import os

import cv2

# FFmpeg probes a new stream until it has seen about 20 frames for a frame-rate estimate: 2.25 s
# of a 12.5 fps camera, more than the 2 s camapp allows itself to resume after an outage. Half
# a second of stream is enough for the codec, size and rate (the rate comes from the stream's
# description or container). TCP is OpenCV's own default for RTSP, which this variable replaces.
CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000"
FFMPEG_QUIET = "-8"  # AV_LOG_QUIET
LOG_LEVEL_ERROR = 2  # cv::utils::logging::LOG_LEVEL_ERROR, which OpenCV 4's binding does not name


def configure_opencv(debug: bool = False) -> None:
    """Open streams promptly and, unless debugging, keep OpenCV's and FFmpeg's own messages
    (a `[ WARN:…] VIDEOIO(FFMPEG)` and a `[tcp @ …] Connection refused` on every reconnection
    attempt) out of the journal: camapp reports failures itself, once. Values the user set in
    the environment win."""
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", CAPTURE_OPTIONS)
    if debug:
        return
    # OpenCV 5 has the call in cv2.utils.logging, OpenCV 4 at the top: a Pi keeps apt's numpy 1,
    # for which the newest OpenCV is 4.11 (deploy/constraints.txt).
    getattr(cv2.utils, "logging", cv2).setLogLevel(LOG_LEVEL_ERROR)
    # FFmpeg's level has no OpenCV call: OpenCV reads it from here when it loads FFmpeg.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)
