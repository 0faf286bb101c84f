"""The one bounded reader of the files a user names (camapp/files.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camapp.files import read_capped


def _reason(path: str | Path, limit: int) -> str:
    with pytest.raises(OSError) as caught:
        read_capped(path, limit)
    return str(caught.value.strerror)


def test_a_file_over_its_cap_is_refused_with_sizes_that_differ(tmp_path: Path) -> None:
    """Rounded up: a file just over 64 kB is 65 kB, not "64 kB, over the 64 kB cap"."""
    path = tmp_path / "big"
    path.write_bytes(b"x" * ((64 << 10) + 1))
    assert _reason(path, 64 << 10) == "65 kB, over the 64 kB cap"
    path.write_bytes(b"x" * 1_900_000)
    assert _reason(path, 1 << 20) == "2 MiB, over the 1 MiB cap"
    assert read_capped(path, 2 << 20) == b"x" * 1_900_000
    assert _reason(path, 3 << 19) == "2 MiB, over the 1 MiB cap"  # a cap is never overstated


def test_what_is_no_regular_file_is_never_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it to read would wait for a writer for ever
    for path in (tmp_path / "fifo", "/dev/zero", tmp_path):
        assert _reason(path, 1 << 20) == "not a regular file", path
