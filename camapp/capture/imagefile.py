"""The one reader of image files a user hands camapp (classify, datasets, compare, calibration).

A file is judged before it is decoded: its size on disk against MAX_IMAGE_BYTES (a symlink
to a huge file is never read whole), then the width and height its header claims (PNG, JPEG
or BMP, parsed here without decoding) against MAX_IMAGE_PIXELS, so a small file that would
decode to gigabytes is refused in microseconds. Every refusal is an `UnreadableImage` (a
`ConfigError`) whose text is one line naming the file and the reason; nothing else escapes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from camapp.errors import ConfigError, os_reason, shorten
from camapp.files import read_capped

MAX_IMAGE_BYTES = 64 << 20  # a 40-megapixel PNG photo fits; a 2 GiB file is never read
MAX_IMAGE_PIXELS = 40_000_000  # 120 MB decoded (BGR): a 12 MP Pi HQ frame and more
FORMATS = "PNG, JPEG or BMP"
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png")  # the files taken as images in a folder


class UnreadableImage(ConfigError):
    """An image file refused or undecodable: `reason` without the path, for reports."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {shorten(path)}: {reason}")
        self.path, self.reason = Path(path), reason


_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG, JPEG or BMP header; ValueError if there is none."""
    if data.startswith(_PNG) and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"BM") and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", data[18:22])
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height means top-down rows
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    raise ValueError(f"not a {FORMATS} file")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG's marker segments to its start of frame."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("corrupt JPEG header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header
            break
        pos += 2 + length
    raise ValueError("JPEG without a frame header")


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file (BGR, or as `flags` ask) after checking its size and header;
    an `UnreadableImage` (a `ConfigError`: exit 2) otherwise, and never anything else."""
    try:
        data = read_capped(path, MAX_IMAGE_BYTES)
        if not data:
            raise ValueError("empty file")
        width, height = image_size(data)
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{width}x{height} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel cap"
            )
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except OSError as exc:
        raise UnreadableImage(path, os_reason(exc)) from None
    except (ValueError, struct.error, cv2.error, MemoryError) as exc:
        text = str(exc).strip()
        raise UnreadableImage(path, shorten(text.splitlines()[-1]) if text else "corrupt") from None
    if image is None or not image.size:
        raise UnreadableImage(path, "cannot be decoded")
    return image
