"""Frame sources, chosen from a source spec string.

| spec                         | source                                   |
|------------------------------|------------------------------------------|
| `picamera` / `picamera:N`    | Raspberry Pi camera N through picamera2  |
| `usb:N` or `/dev/videoN`     | USB/V4L2 camera                          |
| `rtsp://…`, `http(s)://…`    | network stream                           |
| anything else                | a video file                             |
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from camapp.errors import ConfigError, SourceError
from camapp.sources.base import Frame, Source

if TYPE_CHECKING:
    from camapp.sources.picamera import PiCameraSettings

log = logging.getLogger(__name__)

__all__ = ["Frame", "Reconnecting", "Source", "open_source"]

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")


def open_source(
    spec: str,
    realtime: bool = True,
    loop: bool = False,
    picamera: PiCameraSettings | None = None,
    model_size: int = 224,
) -> Source:
    """Open the source named by `spec`; failures to open are reported, never retried here.

    `realtime` and `loop` apply to video files only; `picamera` and `model_size` (which the
    automatic lores size covers) to Pi cameras only.
    """
    if spec == "picamera" or spec.startswith("picamera:"):
        from camapp.sources.picamera import PiCameraSettings, PiCameraSource

        num = spec.partition(":")[2] or "0"
        if not num.isdigit():
            raise ConfigError(f"bad Pi camera '{spec}': expected picamera or picamera:N")
        return PiCameraSource(int(num), picamera or PiCameraSettings(), model_size)
    from camapp.sources.opencv import CaptureSource, FileSource

    if spec.startswith(("usb:", "/dev/video")) or spec.startswith(STREAM_PREFIXES):
        return CaptureSource(spec)
    return FileSource(spec, realtime=realtime, loop=loop)


class Reconnecting:
    """Wraps a live source: when it drops out, reopen it, promptly at first, then backing off.

    A camera unplugged for a minute or an RTSP server that reboots costs frames, never the
    process. For the first `patience` seconds of an outage (a reboot, a blip) the attempts are
    at most `prompt_delay` apart, so frames flow again within about that (plus the stream's
    opening) of its return; a source down for longer is tried with exponential backoff up to
    `max_delay`, so one that stays down is not hammered. Waits end early when `stop` is set, so
    shutdown is never held up by a backoff.
    """

    def __init__(
        self,
        opener: Callable[[], Source],
        stop: threading.Event,
        first: Source,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        prompt_delay: float = 1.0,
        patience: float = 120.0,
    ) -> None:
        self._opener = opener
        self._stop = stop
        self._source: Source | None = first
        self._min, self._max = min_delay, max_delay
        self._prompt, self._patience = prompt_delay, patience
        self.name, self.live, self.paced, self.fps = first.name, True, True, first.fps
        self._seq = 0
        self.reconnects = 0

    def read(self) -> Frame | None:
        delay = self._min
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                if self._source is None:
                    self._source = self._opener()
                    self.reconnects += 1
                    log.info("source %s is back", self.name)
                frame = self._source.read()
            except SourceError as exc:
                down_since = down_since or time.monotonic()
                self._drop(exc, delay)
                young = time.monotonic() - down_since < self._patience
                delay = min(delay * 2, self._max, self._prompt if young else self._max)
                continue
            if frame is None:
                return None
            # Keep one sequence across reconnects: frame numbers must never go back.
            frame.seq = self._seq
            self._seq += 1
            return frame
        return None

    def _drop(self, exc: SourceError, delay: float) -> None:
        if self._source is not None:
            log.warning("%s; retrying with backoff", exc)
            self._source.close()
            self._source = None
        self._stop.wait(delay)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
