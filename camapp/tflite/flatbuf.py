"""Bounded reading of an untrusted flatbuffer (a .tflite file, or the metadata inside one).

flatbuffers' Python API trusts its input: a corrupt vector length makes a reader loop over
billions of elements, and a crafted vector whose offsets all point at one long string makes
it copy that string again and again. A `Reader` checks that every vtable, vector, table and
string it visits lies inside the buffer, and charges each table and copied byte to a budget
that no well-formed buffer of that size can exceed, so a bad file fails fast with a
ValueError instead of eating time and memory.

Tables are byte positions. Fields are addressed by their index in the .fbs declaration (a
union takes two: its type, then its value), which is how flatc numbers vtable slots.
"""

from __future__ import annotations

import struct
from typing import Any

# Far above any real model (MobileNetV2 has ~400 tables, a 2B-parameter LLM a few
# thousand), and low enough that the Python objects built for them stay in the tens of MB.
MAX_TABLES = 100_000
# A table reached through a vector costs at least its 4-byte offset plus its 4-byte
# vtable reference, so a buffer of n bytes holds at most n // 8 of them.
_MIN_TABLE_BYTES = 8
_WORD = 4
# A vtable starts with two uint16 (its own size, the table's size), then one per field.
_VTABLE_HEADER = 4


class Reader:
    """Reads one buffer; each table and byte copied out is charged to its budget."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.size = len(buf)
        self._tables = min(self.size // _MIN_TABLE_BYTES, MAX_TABLES)
        self._bytes = self.size

    def root(self, identifier: bytes) -> int:
        """The root table, after checking the 4-byte file identifier that follows its offset."""
        if self.size < 2 * _WORD or bytes(self.buf[_WORD : 2 * _WORD]) != identifier:
            raise ValueError(f"no {identifier.decode()} file identifier")
        return self._indirect(0)

    def table(self, table: int, field: int) -> int | None:
        """A table-typed field, or None when it is absent."""
        at = self._field(table, field)
        if not at:
            return None
        self._charge_tables(1)
        return self._indirect(at)

    def tables(self, table: int, field: int) -> list[int]:
        """A vector of tables ([] when absent)."""
        start, count = self._vector(table, field, _WORD)
        self._charge_tables(count)
        return [self._indirect(start + _WORD * i) for i in range(count)]

    def union(self, table: int, field: int) -> tuple[int, int | None]:
        """(type, value) of the union declared as field `field`; type 0 means none."""
        kind = self.scalar(table, field, "B", 0)
        return kind, self.table(table, field + 1) if kind else None

    def string(self, table: int, field: int) -> bytes | None:
        """A string field's bytes, or None when it is absent."""
        at = self._field(table, field)
        if not at:
            return None
        at = self._indirect(at)
        length = self._unpack("<I", at)
        self._check_span(at + _WORD, length, "string")
        self._charge_bytes(length)
        return bytes(self.buf[at + _WORD : at + _WORD + length])

    def floats(self, table: int, field: int) -> tuple[float, ...]:
        """A [float] field (empty when absent)."""
        start, count = self._vector(table, field, _WORD)
        self._charge_bytes(_WORD * count)
        return struct.unpack_from(f"<{count}f", self.buf, start)

    def scalar(self, table: int, field: int, code: str, default: Any) -> Any:
        """A scalar field; `code` is its struct format character ("B" for a ubyte)."""
        at = self._field(table, field)
        return self._unpack("<" + code, at) if at else default

    def _field(self, table: int, field: int) -> int:
        """Where a field's value starts, or 0 when the table does not hold it."""
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        slot = _VTABLE_HEADER + 2 * field
        if slot + 2 > vtable_size:
            return 0  # written by an older schema than the field
        offset = self._unpack("<H", vtable + slot)
        return table + offset if offset else 0

    def _vector(self, table: int, field: int, width: int) -> tuple[int, int]:
        at = self._field(table, field)
        if not at:
            return 0, 0
        at = self._indirect(at)
        count = self._unpack("<I", at)
        self._check_span(at + _WORD, count * width, f"vector of {count} items")
        return at + _WORD, count

    def _indirect(self, at: int) -> int:
        target = at + self._unpack("<I", at)
        self._check_span(target, _WORD, "table")
        return target

    def _unpack(self, fmt: str, at: int) -> Any:
        self._check_span(at, struct.calcsize(fmt), "value")
        return struct.unpack_from(fmt, self.buf, at)[0]

    def _check_span(self, start: int, length: int, what: str) -> None:
        if start < 0 or start + length > self.size:
            raise ValueError(f"{what} at byte {start} runs past the end ({self.size} bytes)")

    def _charge_tables(self, count: int) -> None:
        if count > self._tables:
            raise ValueError(f"more tables than {self.size} bytes can hold")
        self._tables -= count

    def _charge_bytes(self, count: int) -> None:
        if count > self._bytes:
            raise ValueError(f"more text than {self.size} bytes can hold")
        self._bytes -= count
