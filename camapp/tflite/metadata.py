"""TFLite Model Metadata: the input normalisation and label file names a model declares.

Models made with tflite-support carry a ModelMetadata flatbuffer in the buffer named
TFLITE_METADATA. No schema module for it ships with LiteRT, so its few fields used here are
read by their index in tensorflow/tflite-support's
tensorflow_lite_support/metadata/metadata_schema.fbs (file identifier "M001"); fields added
by later schema versions are appended, so these indices stay valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from camapp.tflite.flatbuf import Reader

NAME = b"TFLITE_METADATA"
_IDENTIFIER = b"M001"

# Field indices in metadata_schema.fbs.
_MODEL_SUBGRAPHS = 3  # ModelMetadata.subgraph_metadata
_SUBGRAPH_INPUTS = 2  # SubGraphMetadata.input_tensor_metadata
_SUBGRAPH_OUTPUTS = 3  # SubGraphMetadata.output_tensor_metadata
_TENSOR_PROCESS_UNITS = 4  # TensorMetadata.process_units
_TENSOR_FILES = 6  # TensorMetadata.associated_files
_UNIT_OPTIONS = 0  # ProcessUnit.options (a union: type 0, value 1)
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions.NormalizationOptions
_NORM_MEAN, _NORM_STD = 0, 1  # NormalizationOptions.mean, .std
_FILE_NAME, _FILE_TYPE = 0, 2  # AssociatedFile.name, .type
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType: labels of an output tensor's last axis


@dataclass(frozen=True)
class ModelMetadata:
    """What the metadata says about the first input and the outputs of the main subgraph."""

    mean: tuple[float, ...] | None  # per channel, or one value for all; (x - mean) / std
    std: tuple[float, ...] | None
    label_files: tuple[str, ...]  # TENSOR_AXIS_LABELS files named by the outputs


def parse(data: bytes) -> ModelMetadata | None:
    """Read a TFLITE_METADATA buffer; None for another schema version (unknown layout).

    Raises ValueError when the buffer claims to be M001 metadata but is corrupt.
    """
    if data[4:8] != _IDENTIFIER:
        return None
    reader = Reader(data)
    subgraphs = reader.tables(reader.root(_IDENTIFIER), _MODEL_SUBGRAPHS)
    if not subgraphs:
        return ModelMetadata(mean=None, std=None, label_files=())
    inputs = reader.tables(subgraphs[0], _SUBGRAPH_INPUTS)
    mean, std = _normalization(reader, inputs[0]) if inputs else (None, None)
    outputs = reader.tables(subgraphs[0], _SUBGRAPH_OUTPUTS)
    return ModelMetadata(mean=mean, std=std, label_files=_label_files(reader, outputs))


def _normalization(
    reader: Reader, tensor: int
) -> tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None]:
    """The first NormalizationOptions among a tensor's process units."""
    for unit in reader.tables(tensor, _TENSOR_PROCESS_UNITS):
        kind, options = reader.union(unit, _UNIT_OPTIONS)
        if kind == _NORMALIZATION_OPTIONS and options is not None:
            mean = reader.floats(options, _NORM_MEAN)
            std = reader.floats(options, _NORM_STD)
            if not mean or not std or not all(map(math.isfinite, mean + std)) or 0 in std:
                raise ValueError(f"bad normalisation mean {mean[:4]} std {std[:4]}")
            return mean, std
    return None, None


def _label_files(reader: Reader, tensors: list[int]) -> tuple[str, ...]:
    names = []
    for tensor in tensors:
        for file in reader.tables(tensor, _TENSOR_FILES):
            name = reader.string(file, _FILE_NAME)
            if name and reader.scalar(file, _FILE_TYPE, "b", 0) == _TENSOR_AXIS_LABELS:
                names.append(name.decode("utf-8", "replace"))
    return tuple(names)
