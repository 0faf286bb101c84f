"""A stand-in for the `picamera2` module, faithful at the boundary camapp touches.

It checks configurations the way picamera2 and libcamera do (even sizes, lores no larger
than main, lores YUV only before the Pi 5, controls libcamera advertises), lays out YUV420
buffers with a padded stride exactly like picamera2's `make_array`, encodes with the
configured colour space, and counts every request handed out and released.

Use: `rig = Rig(scene=solid((255, 0, 0)))`, then pass `rig.module()` as `picamera2_module`
(or put it in `sys.modules["picamera2"]`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import numpy as np

Scene = Callable[[int, int], np.ndarray]  # (width, height) -> HxWx3 uint8 RGB


def solid(rgb: tuple[int, int, int]) -> Scene:
    def render(width: int, height: int) -> np.ndarray:
        return np.full((height, width, 3), rgb, np.uint8)

    return render


QUADRANT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))  # TL TR BL BR


def quadrants(width: int, height: int) -> np.ndarray:
    """Red, green / blue, white: wrong channel order or orientation shows at once."""
    image = np.empty((height, width, 3), np.uint8)
    mx, my = width // 2, height // 2
    tl, tr, bl, br = QUADRANT_COLOURS
    image[:my, :mx], image[:my, mx:], image[my:, :mx], image[my:, mx:] = tl, tr, bl, br
    return image


class ColorSpace:
    """libcamera.ColorSpace's named constructors, enough to say which encoding was asked for."""

    # name: (Kr, Kb, full range)
    ENCODINGS: ClassVar[dict[str, tuple[float, float, bool]]] = {
        "Smpte170m": (0.299, 0.114, False),
        "Rec709": (0.2126, 0.0722, False),
        "Sycc": (0.299, 0.114, True),
    }

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<ColorSpace {self.name}>"

    @staticmethod
    def Smpte170m() -> ColorSpace:  # libcamera's spelling
        return ColorSpace("Smpte170m")

    @staticmethod
    def Rec709() -> ColorSpace:
        return ColorSpace("Rec709")

    @staticmethod
    def Sycc() -> ColorSpace:
        return ColorSpace("Sycc")


libcamera = SimpleNamespace(ColorSpace=ColorSpace)

YUV_FORMATS = ("YUV420", "YVU420", "NV12", "NV21", "YUYV")
RGB_FORMATS = ("RGB888", "BGR888", "XBGR8888", "XRGB8888")
# What libcamera advertises for a Pi camera; picamera2 refuses any other control.
CONTROLS = {
    "FrameDurationLimits",
    "NoiseReductionMode",
    "ExposureTime",
    "AnalogueGain",
    "AeEnable",
    "AwbEnable",
    "ScalerCrop",
}


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


class Rig:
    """The world the stand-in camera sees, what it is made to fail at, and what it records."""

    def __init__(
        self,
        scene: Scene = quadrants,
        pi5: bool = False,
        cameras: int = 1,
        sensor_age_ns: int = 20_000_000,
    ) -> None:
        self.scene = scene
        self.pi5 = pi5  # only the Pi 5 ISP delivers RGB on the lores stream
        self.cameras = cameras
        self.sensor_age_ns = sensor_age_ns  # how long before capture_request the frame exposed
        self.open_error: Exception | None = None
        self.capture_error: Exception | None = None
        self.make_array_error: Exception | None = None
        self.bad_shape = False  # make_array returns a truncated array
        self.opened: list[Picamera2] = []
        self.requests: list[Request] = []
        self.released: list[Request] = []

    def module(self) -> ModuleType:
        rig = self
        module = ModuleType("picamera2")

        class BoundPicamera2(Picamera2):
            def __init__(self, camera_num: int = 0) -> None:
                super().__init__(rig, camera_num)

        module.Picamera2 = BoundPicamera2  # type: ignore[attr-defined]
        module.libcamera = libcamera  # type: ignore[attr-defined]  # as picamera2's __init__ does
        return module

    @property
    def unreleased(self) -> list[Request]:
        return [r for r in self.requests if not r.released]


class Picamera2:
    def __init__(self, rig: Rig, camera_num: int = 0) -> None:
        if rig.open_error is not None:
            raise rig.open_error
        if not 0 <= camera_num < rig.cameras:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.rig = rig
        self.camera_num = camera_num
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.stop_count = 0
        self.cancelled = 0
        self.capture_waits: list[Any] = []
        rig.opened.append(self)

    def create_video_configuration(
        self,
        main: dict | None = None,
        lores: dict | None = None,
        raw: dict | None = None,
        transform: Any = None,
        colour_space: ColorSpace | None = None,
        buffer_count: int = 6,
        controls: dict | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
    ) -> dict[str, Any]:
        """Like picamera2's: defaults filled in, sizes truncated to even, 30 fps by default."""
        self._check_open()

        def stream(defaults: dict, given: dict) -> dict:
            config = defaults | given
            width, height = config["size"]
            config["size"] = (width - width % 2, height - height % 2)
            return config

        main = stream({"format": "XBGR8888", "size": (1280, 720)}, main or {})
        if lores is not None:
            lores = stream({"format": "YUV420", "size": main["size"]}, lores)
        raw = None if raw is None else {"format": "SRGGB10_CSI2P", "size": main["size"]} | raw
        if colour_space is None:
            small = main["size"][0] < 1280 or main["size"][1] < 720
            colour_space = ColorSpace.Smpte170m() if small else ColorSpace.Rec709()
        controls = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | (
            controls or {}
        )
        return {
            "use_case": "video",
            "transform": transform,
            "colour_space": colour_space,
            "buffer_count": buffer_count,
            "queue": queue,
            "main": main,
            "lores": lores,
            "raw": raw,
            "controls": controls,
            "display": display,
            "encode": encode,
        }

    def configure(self, config: dict[str, Any]) -> None:
        self._check_open()
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
        if not isinstance(config.get("colour_space"), ColorSpace):
            raise RuntimeError("Colour space has incorrect type")
        for name in ("main", "lores"):
            if config.get(name) is not None:
                self._check_stream(config[name], name)
        lores = config.get("lores")
        if lores is not None:
            (mw, mh), (lw, lh) = config["main"]["size"], lores["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] not in YUV_FORMATS and not self.rig.pi5:
                raise RuntimeError("lores stream must be YUV")
        for key in config.get("controls", {}):
            # FrameRate is picamera2's virtual control (Controls._VIRTUAL_FIELDS_MAP_), set as
            # FrameDurationLimits.
            if key not in CONTROLS and key != "FrameRate":
                raise RuntimeError(f"Control {key} is not advertised by libcamera")
        for name in ("main", "lores"):
            if config.get(name) is not None:
                stream = config[name]
                width, height = stream["size"]
                if stream["format"] == "YUV420":
                    stream["stride"] = _align(width, 64)  # so the chroma rows are 32-aligned
                    stream["framesize"] = stream["stride"] * height * 3 // 2
                else:
                    stream["stride"] = _align(width * 3, 32)
                    stream["framesize"] = stream["stride"] * height
        self.camera_config = config

    @staticmethod
    def _check_stream(stream: dict, name: str) -> None:
        fmt = stream.get("format")
        if fmt not in YUV_FORMATS + RGB_FORMATS:
            raise RuntimeError(f"Bad format {fmt} in stream {name}")
        size = stream.get("size")
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError(f"size in {name} stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def camera_configuration(self) -> dict[str, Any] | None:
        return self.camera_config

    def start(self) -> None:
        self._check_open()
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def stop(self) -> None:
        if self.started:
            self.stop_count += 1
        self.started = False

    def close(self) -> None:
        self.stop()
        self.closed = True

    def capture_request(
        self, wait: Any = None, signal_function: Any = None, flush: Any = None
    ) -> Request:
        self._check_open()
        self.capture_waits.append(wait)
        if not self.started:
            raise RuntimeError("capture_request on a stopped camera would block forever")
        if self.rig.capture_error is not None:
            raise self.rig.capture_error
        request = Request(self, self.camera_config)
        self.rig.requests.append(request)
        return request

    def cancel_all_and_flush(self) -> None:
        self.cancelled += 1

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("Camera is closed")


class Request:
    def __init__(self, camera: Picamera2, config: dict[str, Any] | None) -> None:
        self.camera = camera
        self.rig = camera.rig
        self.config = config
        self.released = False
        self.timestamp_ns = time.monotonic_ns() - self.rig.sensor_age_ns

    def make_array(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request used after release")
        if self.rig.make_array_error is not None:
            raise self.rig.make_array_error
        stream = (self.config or {}).get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        width, height = stream["size"]
        rgb = self.rig.scene(width, height)
        if stream["format"] == "YUV420":
            array = _i420(rgb, stream["stride"], self.config["colour_space"])
        elif stream["format"] == "RGB888":
            array = np.ascontiguousarray(rgb[..., ::-1])  # picamera2 "RGB888" is B, G, R in memory
        else:
            raise RuntimeError(f"stand-in does not render {stream['format']}")
        return array[:-2] if self.rig.bad_shape else array

    def get_metadata(self) -> dict[str, Any]:
        if self.released:
            raise RuntimeError("request used after release")
        return {"SensorTimestamp": self.timestamp_ns, "ExposureTime": 10000, "FrameDuration": 66666}

    def release(self) -> None:
        if self.released:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")
        self.released = True
        self.rig.released.append(self)


PADDING = 7  # what fills the stride padding: visible garbage if a converter reads it


def _i420(rgb: np.ndarray, stride: int, colour_space: ColorSpace) -> np.ndarray:
    """The (h*3/2, stride) array picamera2 returns for YUV420, encoded in `colour_space`."""
    kr, kb, full = ColorSpace.ENCODINGS[colour_space.name]
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    pb, pr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))
    if full:
        y, u, v = 255 * luma, 128 + 255 * pb, 128 + 255 * pr
    else:
        y, u, v = 16 + 219 * luma, 128 + 224 * pb, 128 + 224 * pr
    height, width = y.shape

    def half(plane: np.ndarray) -> np.ndarray:  # 2x2 average, as the ISP subsamples
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    def padded(plane: np.ndarray, row_bytes: int) -> np.ndarray:
        out = np.full((plane.shape[0], row_bytes), PADDING, np.uint8)
        out[:, : plane.shape[1]] = np.clip(np.rint(plane), 0, 255)
        return out.ravel()

    flat = np.concatenate(
        (padded(y, stride), padded(half(u), stride // 2), padded(half(v), stride // 2))
    )
    return flat.reshape(height * 3 // 2, stride)
