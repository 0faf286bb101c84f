"""The manifest of known models: where each comes from and how to recognise its bytes."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camapp.errors import ConfigError

DEFAULT_MODEL = "mobilenet_v2_int8"
DEFAULT_DETECTOR = "ssd_mobilenet_v1_coco"  # Apache-2.0, and 3x faster than YOLOv8n here
KINDS = ("classifier", "detector")  # what a model answers: camapp run/classify, or detect


@dataclass(frozen=True)
class LabelsFile:
    """A labels file fetched beside its model, verified the same way."""

    file: str
    url: str
    sha256: str
    size: int  # bytes


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: where to get a model and how to recognise the right bytes."""

    name: str
    file: str
    url: str
    sha256: str
    size: int  # bytes
    input_size: int
    quantization: str  # "int8" | "uint8"
    description: str
    # Models with the same label set answer in the same classes, so they can stand in for
    # each other (the governor's model ladder) and be compared class for class.
    labels_set: str
    delegate: str | None = None  # "edgetpu" for the Edge TPU build
    labels: LabelsFile | None = None  # a labels file to fetch with the model
    # Rank on its label set's ladder: 1 is the top (most accurate), higher ranks cost less.
    # Models without one are never stepped to.
    ladder: int | None = None
    kind: str = "classifier"  # one of KINDS
    licence: str = "Apache-2.0"  # the model's own terms (YOLOv8's are AGPL-3.0)


_REQUIRED: dict[str, type] = {
    "file": str,
    "url": str,
    "sha256": str,
    "size": int,
    "input_size": int,
    "quantization": str,
    "description": str,
    "labels_set": str,
}
_OPTIONAL: dict[str, type] = {
    "delegate": str, "labels": dict, "ladder": int, "kind": str, "licence": str
}  # fmt: skip
_LABELS_KEYS: dict[str, type] = {"file": str, "url": str, "sha256": str, "size": int}


def _manifest_path() -> Path:
    """The wheel ships the manifest inside the package; a checkout keeps it in models/."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parent / "manifest.toml",
        here.parents[2] / "models" / "manifest.toml",
    ):
        if candidate.is_file():
            return candidate
    raise ConfigError("model manifest not found: reinstall camapp")


def _check_table(table: Any, keys: dict[str, type], optional: dict[str, type], where: str) -> None:
    """Exactly the known keys, each of its type, and a bare file name."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table")
    missing = sorted(keys.keys() - table.keys())
    unknown = sorted(table.keys() - keys.keys() - optional.keys())
    if missing or unknown:
        raise ConfigError(f"{where} missing keys {missing}, unknown keys {unknown}")
    for key, value in table.items():
        want = {**keys, **optional}[key]
        # bool is an int subclass; `size = true` is still a mistake.
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"{where} {key} must be a {want.__name__}")
    if Path(table["file"]).name != table["file"]:
        raise ConfigError(f"{where} file must be a bare file name")


def _entry(name: str, table: Any, where: str) -> ModelSpec:
    _check_table(table, _REQUIRED, _OPTIONAL, where)
    if table["quantization"] not in ("int8", "uint8"):
        raise ConfigError(f"{where} quantization must be 'int8' or 'uint8'")
    if table.get("kind", KINDS[0]) not in KINDS:
        raise ConfigError(f"{where} kind must be one of {', '.join(KINDS)}")
    if table.get("ladder", 1) < 1:
        raise ConfigError(f"{where} ladder must be 1 or more")
    labels = table.get("labels")
    if labels is not None:
        _check_table(labels, _LABELS_KEYS, {}, f"{where}.labels")
        if labels["file"] == table["file"]:
            raise ConfigError(f"{where}.labels file must differ from the model file")
        labels = LabelsFile(**labels)
    return ModelSpec(name=name, **{**table, "labels": labels})


def _parse_manifest(data: dict[str, Any], source: Path) -> dict[str, ModelSpec]:
    """Check every entry up front so a bad edit fails clearly, not at fetch time."""
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"invalid model manifest {source}: no [models.NAME] tables")
    specs = {
        name: _entry(name, table, f"invalid model manifest {source}: [models.{name}]")
        for name, table in tables.items()
    }
    rungs = [(s.labels_set, s.ladder) for s in specs.values() if s.ladder is not None]
    if len(rungs) != len(set(rungs)):
        raise ConfigError(f"invalid model manifest {source}: two models share a ladder rank")
    return specs


def ladder_models(labels_set: str, manifest: dict[str, ModelSpec] | None = None) -> list[ModelSpec]:
    """The models of a label set that have a ladder rank, top (most accurate) first."""
    manifest = load_manifest() if manifest is None else manifest
    ranked = [s for s in manifest.values() if s.labels_set == labels_set and s.ladder is not None]
    return sorted(ranked, key=lambda s: s.ladder or 0)


def load_manifest() -> dict[str, ModelSpec]:
    """Read the manifest of known models, keyed by name."""
    path = _manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid model manifest {path}: {exc}") from None
    return _parse_manifest(data, path)


def _spec(name: str, manifest: dict[str, ModelSpec] | None) -> ModelSpec:
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        known = ", ".join(sorted(manifest))
        raise ConfigError(f"unknown model '{name}' (known models: {known})")
    return manifest[name]


def display_name(model_path: Path) -> str:
    """The manifest name of a model file (by file name), else its stem: what messages report."""
    return next(
        (s.name for s in load_manifest().values() if s.file == model_path.name), model_path.stem
    )
