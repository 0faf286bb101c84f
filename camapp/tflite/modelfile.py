"""The one reader (and writer) of .tflite bytes: a model file read once, bounded, into a
`ModelFile` that every consumer shares.

`open_model()` reads the file's head first (a video or a 2 GB file passed by mistake is
refused before it is read), then the whole file once; every flatbuffer offset is
bound-checked before LiteRT's generated parser builds the object tree; the graph is
described and its kind judged once; the zip appended to it (labels, camapp's own record) is
read from the same bytes. The loader, `model info`, `model list`, the tools, quantize,
dequantize and training's cut and graft all take a ModelFile, so a model is opened once per
load and refused in one wording (`graph.invalid`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from camapp.errors import ConfigError, echo, first_line, os_reason, read_error, shorten
from camapp.files import NotRegular, open_regular
from camapp.tflite import bundle, graph
from camapp.tflite.flatbuf import Reader

_TFL3 = b"TFL3"
MAX_MODEL_BYTES = 512 << 20  # far above any model a Pi can run; bounds what is read
_FLATBUFFER_BYTES = 2**31 - 1  # flatbuffers' 32-bit offsets reach no further
_FOREIGN = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "gzip data",
    b"\x7fELF": "a program",
}
# Option tables that hold strings: (Operator union field, option type) -> string fields.
_OPTION_STRINGS = {
    (3, schema.BuiltinOptions.VarHandleOptions): (0, 1),
    (11, schema.BuiltinOptions2.StableHLOCompositeOptions): (0,),
    (11, schema.BuiltinOptions2.StablehloCustomCallOptions): (0, 2),
}


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A model file as read once. `model` is shared: edit `editable()`, a copy of it."""

    path: Path
    data: bytearray = field(repr=False)  # the whole file, the appended zip included
    model: schema.ModelT = field(repr=False)
    info: graph.GraphInfo = field(repr=False)
    kind: graph.Kind
    why: str  # what kind() saw, as a noun phrase ("image classifier (1001 classes)")
    bundle: bundle.Bundle = field(repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels bundled with the model; () when it has none."""
        return self.bundle.labels

    @property
    def record(self) -> dict[str, Any]:
        """What `camapp train` recorded about a model it made ({} for any other)."""
        return dict(self.bundle.record)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def quantized(self) -> bool:
        """Any tensor carries quantization scales."""
        return any(
            t.quantization is not None and t.quantization.scale is not None
            and len(t.quantization.scale)
            for g in self.model.subgraphs for t in g.tensors or ()
        )  # fmt: skip

    def classifier(self, labels: list[str] | tuple[str, ...] | None = None) -> graph.ClassifierSpec:
        """The model as an image classifier whose classes fit `labels` (default: its own),
        or a one-line ConfigError."""
        return graph.check_classifier(self.info, labels)

    def editable(self) -> schema.ModelT:
        """A private copy of the graph to edit (the shared one stays as read)."""
        return parse(bytearray(self.data), self.path)


def open_model(path: str | os.PathLike[str], max_bytes: int = MAX_MODEL_BYTES) -> ModelFile:
    """Read a model file once: its graph, kind, metadata, bundled labels and record."""
    path = Path(path)
    data = _read(path, max_bytes)
    return from_bytes(data, path)


def from_bytes(data: bytearray, path: Path) -> ModelFile:
    """A ModelFile of bytes already in memory (a model camapp has just made)."""
    model = parse(data, path)
    found = bundle.read(data, str(path))
    info = graph.describe(model, str(path), found.labels)
    kind, why = graph.kind(info)
    return ModelFile(path, data, model, info, kind, why, found)


def parse(data: bytearray, path: str | os.PathLike[str]) -> schema.ModelT:
    """LiteRT's object tree of a flatbuffer, every offset checked first, or the one-line
    refusal. Vectors in it (shapes, weights) are numpy views of `data`."""
    if len(data) < 8 or bytes(data[4:8]) != _TFL3:
        raise graph.invalid(path, "no TFL3 identifier")
    try:
        _walk(Reader(data))
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        _check_references(model)
    except Exception as exc:  # the generated parser reports corruption with assorted types
        raise graph.invalid(path, f"corrupt or truncated: {first_line(exc)}") from None
    return model


def _read(path: Path, max_bytes: int) -> bytearray:
    """The whole file, once its first bytes show a TFLite flatbuffer (a video passed by
    mistake is not read in) and its size is under the bound."""
    try:
        with open_regular(path) as file:
            head = file.read(8)
            if len(head) < 8:
                raise graph.invalid(path, f"only {len(head)} bytes" if head else "empty file")
            if head[4:8] != _TFL3:
                found = next((n for magic, n in _FOREIGN.items() if head.startswith(magic)), "")
                why = f"no TFL3 identifier: {found}" if found else "no TFL3 identifier"
                raise graph.invalid(path, why)
            size = os.fstat(file.fileno()).st_size
            if size > _FLATBUFFER_BYTES:
                raise graph.invalid(path, f"{size} bytes, more than a flatbuffer can address")
            if size > max_bytes:
                raise graph.invalid(path, f"{size} bytes, over the {max_bytes >> 20} MiB bound")
            file.seek(0)
            data = bytearray(size)
            del data[file.readinto(data) :]  # the file may have shrunk since fstat
            return data
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {shorten(path)}") from None
    except NotRegular:
        raise graph.invalid(path, "not a regular file") from None
    except OSError as exc:
        raise read_error("model file", path, exc) from None


def _walk(reader: Reader) -> None:
    """Visit every table vector and string ModelT.InitFromObj will, so the reader's budget,
    not the file, bounds what that loops over and copies. Numbers are schema.fbs fields."""
    model = reader.root(_TFL3)
    reader.string(model, 3)  # description
    for code in reader.tables(model, 1):  # operator_codes
        reader.string(code, 1)  # custom_code
    for subgraph in reader.tables(model, 2):  # subgraphs
        _walk_subgraph(reader, subgraph)
    reader.tables(model, 4)  # buffers (their data stays a view of the bytes read)
    for named in reader.tables(model, 6) + reader.tables(model, 8):  # metadata, buffer groups
        reader.string(named, 0)  # name
    for signature in reader.tables(model, 7):  # signature_defs
        reader.string(signature, 2)  # signature_key
        for tensor_map in reader.tables(signature, 0) + reader.tables(signature, 1):
            reader.string(tensor_map, 0)  # name
    for external in reader.tables(model, 9):  # external_buffers
        reader.string(external, 4)  # packing


def _walk_subgraph(reader: Reader, subgraph: int) -> None:
    reader.string(subgraph, 4)  # name
    for tensor in reader.tables(subgraph, 0):  # tensors
        reader.string(tensor, 3)  # name
        sparsity = reader.table(tensor, 6)
        if sparsity is not None:
            reader.tables(sparsity, 2)  # dim_metadata
        reader.tables(tensor, 9)  # variant_tensors
    for op in reader.tables(subgraph, 3):  # operators
        for union in (3, 11):  # builtin_options, builtin_options_2
            option_type, options = reader.union(op, union)
            for text in _OPTION_STRINGS.get((union, option_type), ()) if options else ():
                reader.string(options, text)


def _check_references(model: schema.ModelT) -> None:
    """Indices that describe() follows must land inside the vectors they index."""
    if not model.subgraphs:
        raise ValueError("no subgraphs")
    codes, buffers = len(model.operatorCodes or ()), len(model.buffers or ())
    for entry in model.metadata or ():
        _check_range("buffer", [entry.buffer], 0, buffers)
    for subgraph in model.subgraphs:
        tensors = len(subgraph.tensors or ())
        _check_range("tensor", [*_ints(subgraph.inputs), *_ints(subgraph.outputs)], 0, tensors)
        for op in subgraph.operators or ():
            _check_range("operator code", [op.opcodeIndex], 0, codes)
            # -1 marks an optional input left out.
            _check_range("tensor", [*_ints(op.inputs), *_ints(op.outputs)], -1, tensors)


def _ints(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _check_range(what: str, indices: list[int], low: int, count: int) -> None:
    for index in indices:
        if not low <= int(index) < count:
            raise ValueError(f"{what} index {index} out of range (0..{count - 1})")


def writable(path: str | os.PathLike[str]) -> Path:
    """`path` if a file may be written there by `replacing`: one with a name (not '', '.',
    '..' or '/'), not a device, FIFO or socket that a rename would replace."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ConfigError(f"cannot write {echo(str(path))}: not a file name")
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ConfigError(f"cannot write {shorten(path)}: not a regular file")
    return path


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside `path` for the block to write (and check); renamed onto `path`
    only when the block ends without an error, removed otherwise: a failure never leaves a
    half-written or broken file under the name, nor harms the file it would replace."""
    path = writable(path)
    part = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {shorten(path)}: {os_reason(exc)}") from None
    finally:
        part.unlink(missing_ok=True)


def write(out: str | os.PathLike[str], model: schema.ModelT | bytes, carried: bytes) -> int:
    """Write a model (objects or flatbuffer bytes) followed by its bundle, through
    `replacing`; returns the size written."""
    if not isinstance(model, bytes):
        model = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    data = model + carried
    with replacing(out) as part:
        part.write_bytes(data)
    return len(data)
