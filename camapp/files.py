"""Files the user names (images, labels, config, passwords, frame ranges), read bounded.

`Path.read_bytes()` reads whatever the path gives: `/dev/zero` or a multi-gigabyte file until
memory runs out, and a FIFO nobody writes to forever. `read_capped` refuses anything but a
regular file, and more than `limit` bytes, with an OSError whose `strerror` is the short
reason, so callers keep reporting it as they report a file that cannot be opened. (A model
file has its own reader, `tflite.modelfile`, which judges its first bytes before the rest.)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_TEXT_BYTES = 16 << 20  # far above any labels, config or ranges file camapp reads


def read_capped(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked on the open file, and
    again while reading, so a growing file stops there)."""
    fd = os.open(Path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise OSError(
                errno.EFBIG, f"{_size(info.st_size)}, over the {_size(limit)} cap", str(path)
            )
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"over the {_size(limit)} cap", str(path))
    return data


def read_text(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> str:
    """`read_capped` decoded as UTF-8 (a UnicodeDecodeError otherwise, as `read_text` gives)."""
    return read_capped(path, limit).decode("utf-8")


def _size(n: int) -> str:
    """Rounded up: a file just over a cap never reads as the cap itself."""
    for unit, shift in (("MiB", 20), ("kB", 10)):
        if n >= 1 << shift:
            return f"{-(-n >> shift)} {unit}"
    return f"{n} bytes"
