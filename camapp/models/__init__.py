"""Models: the manifest of known models, verified fetching, labels and model info."""

from camapp.models.info import format_model_info, model_info
from camapp.models.labels import read_labels
from camapp.models.manifest import (
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    ModelSpec,
    display_name,
    ladder_models,
    load_manifest,
)
from camapp.models.store import default_model_dir, fetch, fetched, resolve_model

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_MODEL",
    "ModelSpec",
    "default_model_dir",
    "display_name",
    "fetch",
    "fetched",
    "format_model_info",
    "ladder_models",
    "load_manifest",
    "model_info",
    "read_labels",
    "resolve_model",
]
