"""The Raspberry Pi camera through picamera2 (libcamera).

The model input comes from the ISP-scaled `lores` stream, so the CPU never resizes a full
frame: the ISP downscales to just above the model input (keeping the sensor aspect) unless the
`[picamera]` settings give a lores size, and the preprocessor only crops or stretches. `main`
exists because libcamera requires it; nothing reads it, so it is YUV420 (half the CMA memory
of RGB888) with few buffers.

picamera2 is imported lazily: it is only installable from Raspberry Pi OS's apt (it needs
libcamera's Python bindings), and every other source must work without it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from camapp.capture.base import Frame, isp_size
from camapp.config.schema import PiCameraSettings
from camapp.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: sudo apt install python3-picamera2 "
    "(and create the venv with --system-site-packages)"
)
MAIN_FORMAT = "YUV420"  # never read; RGB888 only if a feature ever wants full-size frames
BUFFER_COUNT = 4  # ISP pipelining plus the one request we hold; the video default of 6 wastes CMA
CAPTURE_TIMEOUT = 5.0  # seconds without a frame before read() reports the camera as stalled
# Seconds; an older SensorTimestamp is not trusted as the capture time. At slow frame rates
# the queued requests can hold frames up to BUFFER_COUNT intervals old, so it grows with them.
MAX_SENSOR_AGE = 1.0


class PiCameraSource:
    """Pi camera N, delivering RGB frames of the lores size.

    Thread-safe in the way the app uses it: one thread calls `read()` while the main thread
    may call `close()`; they serialise on a lock, so closing waits at most one frame (or the
    capture timeout, if the camera has stalled).
    """

    live = paced = True

    def __init__(
        self,
        camera_num: int = 0,
        settings: PiCameraSettings | None = None,
        model_size: int = 224,
        picamera2_module: Any = None,
        capture_timeout: float = CAPTURE_TIMEOUT,
        contain: bool = False,
    ) -> None:
        """`model_size`: the model input's larger side, which the automatic lores size covers
        (or fits in, with `contain`: a letterboxing model)."""
        settings = settings or PiCameraSettings()
        # The settings were validated where they were read (config/schema.py); only the
        # automatic lores size, which depends on the model, is checked here.
        main_size = settings.main_size
        lores_size = settings.lores_size or isp_size(main_size, model_size, contain)
        if lores_size[0] > main_size[0] or lores_size[1] > main_size[1]:
            raise ConfigError(
                f"bad Pi camera size: lores {lores_size[0]}x{lores_size[1]} exceeds main "
                f"{main_size[0]}x{main_size[1]} (the automatic lores size is sized for the model's "
                f"{model_size}x{model_size} input: set a larger picamera main_size)"
            )

        self.name = f"picamera:{camera_num}"
        self.fps = float(settings.fps)
        self.camera_num = camera_num
        self.main_size = main_size
        self.lores_size = lores_size
        self.lores_format = settings.lores_format
        self._timeout = capture_timeout
        self._max_age = max(MAX_SENSOR_AGE, BUFFER_COUNT / self.fps)
        self._seq = 0
        self._lock = threading.Lock()

        module = picamera2_module if picamera2_module is not None else _import_picamera2()
        # picamera2 imports libcamera itself; Smpte170m (BT.601, limited range) is the encoding
        # OpenCV's I420 conversion assumes. picamera2 would pick Rec709 for mains >= 1280x720,
        # which OpenCV would decode with visibly wrong colours.
        libcamera = getattr(module, "libcamera", None)
        self._colour_space = libcamera.ColorSpace.Smpte170m() if libcamera is not None else None
        try:
            self._cam: Any = module.Picamera2(camera_num)
        except Exception as exc:
            raise SourceError(
                f"cannot open Pi camera {camera_num}: {exc} (is it connected, enabled and not used "
                "by another process? check with: rpicam-hello --list-cameras)"
            ) from exc
        if not hasattr(self._cam, "cancel_all_and_flush"):
            # Before it (2024), capture_request(wait=...) ignored the timeout: a stalled camera
            # would hang the capture thread for good instead of being reconnected.
            self._shutdown()
            raise ConfigError(
                "this picamera2 cannot time out a capture, so a stalled camera would hang "
                "camapp: upgrade it (sudo apt install --only-upgrade python3-picamera2)"
            )
        try:
            self._configure_and_start(lores_size)
        except Exception as exc:
            self._shutdown()
            raise SourceError(f"cannot start Pi camera {camera_num}: {exc}{self._hint()}") from exc

    def read(self) -> Frame | None:
        """The next frame, RGB; None once closed. A failed or stalled capture: SourceError."""
        with self._lock:
            while self._cam is not None:
                request = self._capture()
                try:
                    frame = self._frame(request)
                except SourceError:
                    raise
                except Exception as exc:
                    raise SourceError(f"{self.name}: bad frame: {exc}") from exc
                finally:
                    request.release()  # always: an unreleased request starves the camera
                if frame is not None:
                    self._seq += 1
                    return frame
            return None

    def _capture(self) -> Any:
        try:
            return self._cam.capture_request(wait=self._timeout)
        except TimeoutError as exc:
            # Drop the still-pending job, or it would later take a buffer nobody releases.
            with contextlib.suppress(Exception):
                self._cam.cancel_all_and_flush()
            raise SourceError(
                f"{self.name}: no frame for {self._timeout:g}s (camera cable loose?)"
            ) from exc
        except Exception as exc:
            raise SourceError(f"{self.name}: capture failed: {exc}") from exc

    def _frame(self, request: Any) -> Frame | None:
        """The request's frame; None skips it (a subclass's frame may not be ready)."""
        image = self._to_rgb(request.make_array("lores"))
        ts, mono = _capture_times(request.get_metadata(), self._max_age)
        return Frame(self._seq, ts, image, mono)

    def close(self) -> None:
        """Stop and release the camera, so the next process (or a reopen) can acquire it."""
        with self._lock:
            self._shutdown()

    def _configure_and_start(self, lores_size: tuple[int, int]) -> None:
        cam = self._cam
        frame_us = round(1_000_000 / self.fps)
        extra = {} if self._colour_space is None else {"colour_space": self._colour_space}
        config = cam.create_video_configuration(
            main={"size": self.main_size, "format": MAIN_FORMAT},
            lores={"size": lores_size, "format": self.lores_format},
            buffer_count=BUFFER_COUNT,
            # This key replaces the 30 fps default that create_video_configuration puts in.
            controls={"FrameDurationLimits": (frame_us, frame_us)},
            **extra,
        )
        cam.configure(config)
        # libcamera may adjust sizes; convert with what it actually delivers.
        actual = cam.camera_configuration()["lores"]["size"]
        self.lores_size = (int(actual[0]), int(actual[1]))
        cam.start()

    def _to_rgb(self, array: np.ndarray) -> np.ndarray:
        width, height = self.lores_size
        if self.lores_format == "YUV420":
            return cv2.cvtColor(_unpad_i420(array, width, height), cv2.COLOR_YUV2RGB_I420)
        # picamera2's "RGB888" is [B, G, R] in memory (the DRM fourcc naming).
        if array.ndim != 3 or array.shape[0] < height or array.shape[1] < width:
            raise ValueError(f"RGB888 array of shape {array.shape} for size {width}x{height}")
        return cv2.cvtColor(array[:height, :width, :3], cv2.COLOR_BGR2RGB)

    def _hint(self) -> str:
        if self.lores_format == "RGB888":
            return " (an RGB888 lores stream needs a Pi 5: set picamera lores_format to YUV420)"
        return ""

    def _shutdown(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception as exc:  # closing must not fail: it runs on every error path
                log.warning("%s: %s failed: %s", self.name, step.__name__, exc)


def _unpad_i420(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Packed (h*3/2, w) I420 from picamera2's (h*3/2, stride) array.

    Y rows are `stride` bytes; each U and V row is stride/2, so two chroma rows share one row
    of the 2-D array and a plain column crop would scramble the colour.
    """
    stride = array.shape[1] if array.ndim == 2 else 0
    if array.shape[0] != height * 3 // 2 or stride < width or stride % 2:
        raise ValueError(f"YUV420 array of shape {array.shape} for size {width}x{height}")
    if stride == width:
        return array
    flat = np.ascontiguousarray(array).reshape(-1)
    luma, chroma = height * stride, (height // 2) * (stride // 2)
    y = flat[:luma].reshape(height, stride)[:, :width]
    u = flat[luma : luma + chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    return np.concatenate((y.ravel(), u.ravel(), v.ravel())).reshape(height * 3 // 2, width)


def _capture_times(metadata: dict[str, Any], max_age: float) -> tuple[float, float]:
    """(wall, monotonic) capture time, from the sensor timestamp when it is plausible.

    libcamera's SensorTimestamp (ns) is on CLOCK_MONOTONIC, the clock of time.monotonic(), and
    marks the exposure rather than our dequeue, so latency figures include the queue wait.
    """
    now_wall, now_mono = time.time(), time.monotonic()
    sensor_ns = metadata.get("SensorTimestamp")
    if isinstance(sensor_ns, int) and sensor_ns > 0:
        age = now_mono - sensor_ns / 1e9
        if 0.0 <= age < max_age:
            return now_wall - age, now_mono - age
    return now_wall, now_mono


def _import_picamera2() -> ModuleType:
    """An install problem is a set-up error (exit 2): restarting the service cannot fix it."""
    try:
        import picamera2
    except ImportError as exc:  # also when picamera2 is there but libcamera's bindings are not
        raise ConfigError(INSTALL_HINT) from exc
    except Exception as exc:
        # Typically "numpy.dtype size changed": pip put numpy 2 in the venv, and apt's simplejpeg
        # (which picamera2 imports) was built against the system's numpy 1.
        raise ConfigError(
            f"picamera2 is installed but failed to import: {' '.join(str(exc).split())} "
            "(numpy in the venv newer than apt's? see deploy/README.md)"
        ) from exc
    return picamera2
