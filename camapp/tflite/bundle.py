"""The zip appended to a .tflite file: its labels, and the record `camapp train` leaves.

TFLite metadata writers append the labels as a zip after the flatbuffer; camapp's trained
models add `camapp.json` (the view, base and labels' meaning they were trained with). The
zip is read from the bytes already in memory, bounded, and is rebuilt whenever a model is
rewritten, since re-serialising a flatbuffer drops whatever follows it.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from camapp.errors import ConfigError, shorten

RECORD_FILE = "camapp.json"  # what camapp train records about a model it made
LABELS_FILE = "labels.txt"
MAX_BUNDLE_BYTES = 16 << 20  # far above 1001 labels and a record; bounds what is unpacked
_BAD_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError)


@dataclass(frozen=True)
class Bundle:
    """What the appended zip holds; empty for a model without one."""

    labels: tuple[str, ...] = ()  # the first .txt member's lines
    record: Mapping[str, Any] = field(default_factory=dict)  # camapp.json, {} if none
    members: tuple[tuple[str, bytes], ...] = ()  # every member, to carry over on a rewrite


def label_lines(text: str) -> list[str]:
    """Strip each line; drop blank lines only at the end, since label i must match output i."""
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    return labels


def read(data: bytes | bytearray, origin: str) -> Bundle:
    """The bundle of a model's bytes. A missing or unusable zip is no bundle; a record that is
    there but corrupt is an error, since applying a trained model's view depends on it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            infos = src.infolist()
            if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
                return Bundle()
            members = tuple((i.filename, src.read(i)) for i in infos if not i.is_dir())
    except _BAD_ZIP:
        return Bundle()
    files = dict(members)
    texts = [name for name, _ in members if name.endswith(".txt")]
    labels = _labels(files[texts[0]]) if texts else []
    return Bundle(tuple(labels), _record(files.get(RECORD_FILE), origin), members)


def _labels(raw: bytes) -> list[str]:
    """A labels file's lines; from an Ultralytics export's metadata (a Python dict with
    `names`: {class id: name}, appended as the only .txt), its class names."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return []
    if text.startswith("{"):
        try:
            names = ast.literal_eval(text).get("names")
        except (ValueError, TypeError, SyntaxError, AttributeError, MemoryError, RecursionError):
            names = None
        if isinstance(names, dict) and sorted(names) == list(range(len(names))):
            return [str(names[i]) for i in range(len(names))]
    return label_lines(text)


def _record(raw: bytes | None, origin: str) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        record = json.loads(raw)
    except ValueError:
        raise ConfigError(f"corrupt {RECORD_FILE} in {shorten(origin)}") from None
    return record if isinstance(record, dict) else {}


def pack(members: tuple[tuple[str, bytes], ...]) -> bytes:
    """A zip of these members, stored uncompressed (b"" for none), to append to a model."""
    if not members:
        return b""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for name, content in members:
            dst.writestr(name, content)
    return buf.getvalue()


def trained(labels: list[str], record: dict[str, Any]) -> bytes:
    """The zip of a model camapp made: labels first (the first .txt is the labels), then its
    record."""
    text = "\n".join(labels) + "\n"
    body = json.dumps(record, indent=1, sort_keys=True)
    return pack(((LABELS_FILE, text.encode()), (RECORD_FILE, body.encode())))
