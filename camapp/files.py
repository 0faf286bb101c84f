"""Files the user names (images, labels, config, passwords, frame ranges), read bounded.

`Path.read_bytes()` reads whatever the path gives: `/dev/zero` or a multi-gigabyte file until
memory runs out, and a FIFO nobody writes to forever. `read_capped` refuses anything but a
regular file, and more than `limit` bytes, with an OSError whose `strerror` is the short
reason, so callers keep reporting it as they report a file that cannot be opened. A model
file, judged by its first bytes before the rest is read, is opened by `open_regular` too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

MAX_TEXT_BYTES = 16 << 20  # far above any labels, config or ranges file camapp reads


class NotRegular(OSError):
    """A folder, FIFO, device or socket where a file was expected."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """`path` opened to read if it is a regular file (judged on the open file: a FIFO put in
    its place meanwhile is not waited on), else NotRegular ("not a regular file")."""
    fd = os.open(Path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(fd, "rb")


def read_capped(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked on the open file, and
    again while reading, so a growing file stops there)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            why = f"{_size(size)}, over the {_size(limit, up=False)} cap"
            raise OSError(errno.EFBIG, why, str(path))
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"over the {_size(limit, up=False)} cap", str(path))
    return data


def read_text(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> str:
    """`read_capped` decoded as UTF-8 (a UnicodeDecodeError otherwise, as `read_text` gives)."""
    return read_capped(path, limit).decode("utf-8")


def _size(n: int, up: bool = True) -> str:
    """A size rounded up (a file just over a cap never reads as the cap itself), or down (a
    cap never reads as more than it is)."""
    for unit, shift in (("MiB", 20), ("kB", 10)):
        if n >= 1 << shift:
            return f"{-(-n >> shift) if up else n >> shift} {unit}"
    return f"{n} bytes"
