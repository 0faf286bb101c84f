"""The manifest of known models: where each comes from and how to recognise its bytes."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camapp.errors import ConfigError

DEFAULT_MODEL = "mobilenet_v2_int8"


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
    delegate: str | None = None  # "edgetpu" for the Edge TPU build


_REQUIRED: dict[str, type] = {
    "file": str,
    "url": str,
    "sha256": str,
    "size": int,
    "input_size": int,
    "quantization": str,
    "description": str,
}
_OPTIONAL: dict[str, type] = {"delegate": str}


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


def _parse_manifest(data: dict[str, Any], source: Path) -> dict[str, ModelSpec]:
    """Check every entry up front so a bad edit fails clearly, not at fetch time."""
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"invalid model manifest {source}: no [models.NAME] tables")
    specs: dict[str, ModelSpec] = {}
    for name, table in tables.items():
        where = f"invalid model manifest {source}: [models.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} is not a table")
        missing = sorted(_REQUIRED.keys() - table.keys())
        unknown = sorted(table.keys() - _REQUIRED.keys() - _OPTIONAL.keys())
        if missing or unknown:
            raise ConfigError(f"{where} missing keys {missing}, unknown keys {unknown}")
        for key, value in table.items():
            want = {**_REQUIRED, **_OPTIONAL}[key]
            # bool is an int subclass; `size = true` is still a mistake.
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"{where} {key} must be a {want.__name__}")
        if Path(table["file"]).name != table["file"]:
            raise ConfigError(f"{where} file must be a bare file name")
        if table["quantization"] not in ("int8", "uint8"):
            raise ConfigError(f"{where} quantization must be 'int8' or 'uint8'")
        specs[name] = ModelSpec(name=name, **table)
    return specs


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
