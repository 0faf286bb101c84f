"""TFLite model files for rewriting: read verified, edit as objects, write with their labels.

Edits go through LiteRT's own flatbuffer_utils and generated schema (no TensorFlow). A model's
labels live in a zip appended after the flatbuffer, which re-serialising would drop.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camapp.errors import ConfigError
from camapp.inference.backends.litert import interpreter_api

MAX_MODEL_BYTES = 512 << 20  # far above any model a Pi can run; bounds what is read
MAX_BUNDLE_BYTES = 16 << 20  # the labels zip appended to a model


@dataclass(frozen=True, slots=True)
class ModelFile:
    path: Path
    data: bytes  # the whole file, labels zip included
    input: dict[str, Any]  # LiteRT's details of the single input
    quantized: bool  # any tensor has quantization scales


def schema() -> tuple[Any, Any]:
    """(flatbuffer_utils, schema_py_generated) from LiteRT, imported when first needed."""
    from ai_edge_litert import schema_py_generated
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils, schema_py_generated


def first_line(exc: BaseException) -> str:
    """An exception as at most 100 characters of one line, for a one-line error."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:100]


def load(path: Path) -> ModelFile:
    """Read a single-input model once LiteRT has verified it as a flatbuffer."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise ConfigError(f"model {path} is over {MAX_MODEL_BYTES >> 20} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read model {path}: {exc.strerror or exc}") from None
    try:
        interpreter = interpreter_api()[0](model_content=data)
        inputs = interpreter.get_input_details()
        tensors = interpreter.get_tensor_details()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"not a valid TFLite model: {path} ({first_line(exc)})") from None
    if len(inputs) != 1:
        raise ConfigError(f"model {path} has {len(inputs)} inputs; only one is supported")
    quantized = any(t["quantization_parameters"]["scales"].size for t in tensors)
    return ModelFile(path, data, inputs[0], quantized)


def parse(data: bytes, path: Path) -> Any:
    """The model as mutable objects (a schema ModelT)."""
    try:
        return schema()[0].read_model_from_bytearray(data)
    except (IndexError, ValueError, TypeError, struct.error) as exc:
        # flatbuffer_utils raises IndexError on valid models that have no buffer at all.
        raise ConfigError(f"cannot parse model {path}: {first_line(exc)}") from None


def serialize(model: Any) -> bytes:
    return bytes(schema()[0].convert_object_to_bytearray(model))


def builtin_codes(model: Any) -> list[int]:
    """The BuiltinOperator of each of the model's operator codes, by index."""
    utils = schema()[0]
    return [utils.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]


def label_bundle(data: bytes) -> bytes:
    """The zip appended to a model (its labels), rebuilt so it can follow another model."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            members = src.infolist()
            if sum(m.file_size for m in members) > MAX_BUNDLE_BYTES:
                return b""
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as dst:
                for member in members:
                    dst.writestr(member, src.read(member))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError):
        return b""  # no usable zip: the model has no labels to carry
    return out.getvalue()


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` for the block to write (and check); renamed onto `path`
    only when the block ends without an error, removed otherwise: a failure never leaves a
    half-written or broken file under the name, nor harms the file it would replace."""
    path = Path(path)
    part = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)[:100]}: {exc.strerror or exc}") from None
    finally:
        part.unlink(missing_ok=True)


def write(path: Path, flatbuffer: bytes, labels_from: ModelFile) -> None:
    """Write a model, followed by the labels zip of the model it was made from."""
    with replacing(path) as part:
        part.write_bytes(flatbuffer + label_bundle(labels_from.data))
