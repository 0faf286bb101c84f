"""Hostile image files, made on the spot (numpy, zlib, struct): never committed.

Also used by benchmarks/image_caps.py for the 30000x30000 PNG of issue 20.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def black_png(path: Path, width: int, height: int, rows: int | None = None) -> Path:
    """A valid grey 8-bit PNG of `width` x `height` whose first `rows` rows (all, by default)
    are stored: zeros compress about 1000:1, so 30000x30000 is under a megabyte on disk and
    2.7 GB decoded as colour. With fewer rows the header claims more than the file holds."""
    pack = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    idat = b"".join(pack.compress(row) for _ in range(height if rows is None else rows))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    data += _chunk(b"IDAT", idat + pack.flush()) + _chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A real small JPEG whose frame header is rewritten to claim `width` x `height`."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    Path(path).write_bytes(bytes(data))
    return Path(path)


def bmp_claiming(path: Path, width: int, height: int) -> Path:
    """A real small BMP whose header is rewritten to claim `width` x `height`."""
    data = bytearray(cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    Path(path).write_bytes(bytes(data))
    return Path(path)


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return Path(path)
