"""Frame sources, chosen from a source spec string.

| spec                         | source                                   |
|------------------------------|------------------------------------------|
| `picamera` / `picamera:N`    | Raspberry Pi camera N through picamera2  |
| `imx500`                     | the AI Camera, its network (the model) run on its sensor |
| `usb:N` or `/dev/videoN`     | USB/V4L2 camera                          |
| `rtsp://…`, `http(s)://…`    | network stream                           |
| `memory:FILE`                | a video's frames decoded into memory once, replayed (benchmarks) |
| anything else                | a video file                             |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from camapp.capture.base import Frame, Source
from camapp.capture.reconnect import Reconnecting
from camapp.config.schema import PiCameraSettings
from camapp.errors import ConfigError, shorten

if TYPE_CHECKING:
    from camapp.capture.imx500 import Network

__all__ = ["Frame", "Reconnecting", "Source", "open_source"]

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")


def open_source(
    spec: str,
    realtime: bool = True,
    loop: bool = False,
    picamera: PiCameraSettings | None = None,
    model_size: int = 224,
    network: Network | None = None,
    crop: str = "center",
    contain: bool = False,
) -> Source:
    """Open the source named by `spec`; failures to open are reported, never retried here.

    `realtime` and `loop` apply to video files only; `picamera`, `model_size` (the model
    input's larger side, which the automatic lores size covers) and `contain` (a letterboxing
    model: the lores size fits in it instead) to Pi cameras and memory replays only;
    `network` (the model's, from capture.imx500.network) and `crop` to the AI Camera.
    """
    if spec == "imx500":
        from camapp.capture.imx500 import Imx500Source

        if network is None:
            raise ConfigError("source imx500 needs an IMX500 network (.rpk) as its model")
        return Imx500Source(network, picamera or PiCameraSettings(), crop)
    if spec == "picamera" or spec.startswith("picamera:"):
        from camapp.capture.picamera import PiCameraSource

        num = spec.partition(":")[2] or "0"
        if not num.isdigit():
            raise ConfigError(f"bad Pi camera '{shorten(spec)}': expected picamera or picamera:N")
        return PiCameraSource(int(num), picamera or PiCameraSettings(), model_size, contain=contain)
    if spec.startswith("memory:"):
        from camapp.capture.memory import MemorySource

        return MemorySource(spec.removeprefix("memory:"), model_size, loop, contain)
    from camapp.capture.opencv import CaptureSource, FileSource

    if spec.startswith(("usb:", "/dev/video")) or spec.startswith(STREAM_PREFIXES):
        return CaptureSource(spec)
    return FileSource(spec, realtime=realtime, loop=loop)
