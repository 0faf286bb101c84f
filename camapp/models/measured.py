"""What `camapp model compare` measured on this device, kept beside the fetched models.

`camapp model list` shows it, so a Pi owner sees which model suits their board without
measuring again. One small JSON file, keyed by each model file's sha256 (a file renamed or
copied keeps its figures; a different file never borrows them). It is only ever advice: a
file that cannot be read or parsed is reported and treated as empty, never an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from camapp.errors import os_reason, shorten

log = logging.getLogger(__name__)

FILE_NAME = "measured.json"
MAX_BYTES = 1 << 20  # thousands of entries; a bigger file is not one camapp wrote


@dataclass(frozen=True)
class Measurement:
    """One model's figures on this device."""

    name: str
    latency_ms: dict[int, float]  # median invoke time, by interpreter threads
    per_s: float  # classifications/s through the pipeline
    workers: int  # the pipeline's workers (one interpreter thread each)
    when: str  # ISO 8601, UTC

    def brief(self) -> str:
        """`12.3 ms (2 threads: 7.1 ms)`: one thread first, then the fastest thread count."""
        one = self.latency_ms.get(1)
        best = min(self.latency_ms, key=self.latency_ms.__getitem__)
        text = f"{one:.2f} ms" if one is not None else ""
        if best != 1:
            text += f" ({best} threads: {self.latency_ms[best]:.2f} ms)"
        return text.strip()


def _path(model_dir: Path) -> Path:
    return Path(model_dir) / FILE_NAME


def read(model_dir: Path) -> dict[str, Measurement]:
    """Every measurement kept in `model_dir`, by model sha256; {} when there is none."""
    path = _path(model_dir)
    try:
        if not path.is_file():
            return {}
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"over {MAX_BYTES} bytes")
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {sha: _entry(value) for sha, value in entries.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("ignoring measurements in %s: %s", path, shorten(exc))
        return {}


def _entry(value: Any) -> Measurement:
    latency = {int(k): float(v) for k, v in value["latency_ms"].items()}
    if not latency:
        raise ValueError("an entry without latencies")
    return Measurement(
        name=str(value["name"]),
        latency_ms=latency,
        per_s=float(value["per_s"]),
        workers=int(value["workers"]),
        when=str(value["when"]),
    )


def record(model_dir: Path, found: dict[str, Measurement]) -> Path | None:
    """Add or replace measurements (by sha256); written whole through a temporary file so a
    reader never sees half of it. Returns the file, or None if it could not be written."""
    path = _path(model_dir)
    entries = {sha: asdict(m) for sha, m in {**read(model_dir), **found}.items()}
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        log.warning("cannot keep the measurements in %s: %s", path, os_reason(exc))
        return None
    return path
