"""Class names: from a labels file, or from the label file embedded in the model (a zip
appended to the flatbuffer, as TFLite metadata writers store them)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from camapp.errors import ConfigError
from camapp.models.store import labels_beside


def _label_lines(text: str) -> list[str]:
    """Strip each line; drop blank lines only at the end, since label i must match output i."""
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    return labels


def read_labels(model_path: Path, labels_path: Path | None = None) -> list[str]:
    """Class names: an explicit file wins, else the first .txt embedded in the model, else
    the labels file the manifest fetches with a known model (the Edge TPU build has none
    embedded)."""
    if labels_path is None and (embedded := embedded_labels(model_path)):
        return embedded
    labels_path = labels_path or labels_beside(model_path)
    if labels_path is not None:
        try:
            text = Path(labels_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read labels file {labels_path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"labels file is not UTF-8 text: {labels_path}") from None
        labels = _label_lines(text)
        if not labels:
            raise ConfigError(f"labels file is empty: {labels_path}")
        return labels
    raise ConfigError(f"model {model_path} has no embedded labels; pass --labels FILE")


def embedded_labels(model_path: Path) -> list[str]:
    """The labels in the zip appended to a model; [] when there is none."""
    try:
        with zipfile.ZipFile(model_path) as bundle:
            names = [n for n in bundle.namelist() if n.endswith(".txt")]
            text = bundle.read(names[0]).decode("utf-8") if names else ""
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {model_path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read model {model_path}: {exc.strerror or exc}") from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        UnicodeDecodeError,
    ):
        text = ""  # no usable embedded zip: same as none
    return _label_lines(text)
