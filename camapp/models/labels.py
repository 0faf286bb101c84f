"""Class names: from a labels file, the labels bundled in the model, or the labels file the
manifest fetches beside a known model."""

from __future__ import annotations

from pathlib import Path

from camapp.errors import ConfigError, read_error, shorten
from camapp.files import read_text
from camapp.models.store import labels_beside
from camapp.tflite.bundle import label_lines
from camapp.tflite.modelfile import ModelFile, open_model


def read_labels(model: ModelFile | Path, labels_path: Path | None = None) -> list[str]:
    """Class names: an explicit file wins, else the labels bundled in the model, else the
    labels file the manifest fetches with a known model (the Edge TPU build has none
    bundled). A model given by path is read for its bundle (a file that is no TFLite model
    has none)."""
    path = model.path if isinstance(model, ModelFile) else Path(model)
    if labels_path is None and (bundled := _bundled(model)):
        return list(bundled)
    labels_path = labels_path or labels_beside(path)
    if labels_path is None:
        raise ConfigError(f"model {shorten(path)} has no embedded labels; pass --labels FILE")
    try:
        text = read_text(labels_path)
    except OSError as exc:
        raise read_error("labels file", labels_path, exc) from None
    except UnicodeDecodeError:
        raise ConfigError(f"labels file is not UTF-8 text: {shorten(labels_path)}") from None
    labels = label_lines(text)
    if not labels:
        raise ConfigError(f"labels file is empty: {shorten(labels_path)}")
    return labels


def _bundled(model: ModelFile | Path) -> tuple[str, ...]:
    if isinstance(model, ModelFile):
        return model.labels
    try:
        return open_model(model).labels
    except ConfigError:
        return ()  # not a TFLite model (ONNX, HEF, a network package): nothing bundled
