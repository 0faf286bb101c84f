"""From settings to loaded classifiers: which file, labels and backend a camera's model means.

`ModelSetup` is what two cameras must share to share a worker pool; resolving it touches only
the manifest and the files, so every problem is found before anything is loaded or captured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from camapp import models
from camapp.config.schema import CameraSettings
from camapp.errors import ConfigError
from camapp.inference import backend as backends
from camapp.inference.backend import BackendOptions
from camapp.inference.classifier import Classifier

# A model file's kind picks its backend when neither the setting nor the manifest does.
BY_SUFFIX = {".onnx": "onnx", ".rpk": "imx500", ".hef": "hailo"}
# Backends whose device reads the labels from the network itself when no file is given.
DEVICE_LABELS = frozenset({"imx500"})


@dataclass(frozen=True)
class ModelSetup:
    path: Path
    labels: tuple[str, ...]
    name: str  # what `classification` messages report: the manifest name, else the file stem
    backend: str
    options: BackendOptions
    top_k: int


def plan(
    model: str | None,
    labels: str | None = None,
    backend: str | None = None,
    delegate: str | None = None,
    threads: int = 1,
    top_k: int = 5,
) -> ModelSetup:
    """Resolve a model setting; the backend is the one asked for, else the manifest's, else
    the one the file's kind implies."""
    path = models.resolve_model(model)
    name = models.display_name(path)
    chosen = backend or _default_backend(path, name, delegate)
    if labels is None and chosen in DEVICE_LABELS:
        names: list[str] = []  # from the network, once its device is open (see load)
    else:
        names = models.read_labels(path, Path(labels) if labels else None)
    options = BackendOptions(threads, None if delegate == "edgetpu" else delegate)
    if chosen not in backends.names():
        backends.create(chosen, path, options)  # raises the one-line unknown-backend error
    return ModelSetup(path, tuple(names), name, chosen, options, top_k)


def for_camera(camera: CameraSettings, threads: int = 1) -> ModelSetup:
    setup = plan(
        camera.model, camera.labels, camera.backend, camera.delegate, threads, camera.top_k
    )
    # The AI Camera classifies on its sensor: it is the one source, and the one backend, for it.
    if (camera.source == "imx500") != (setup.backend == "imx500"):
        raise ConfigError(
            f"camera {camera.camera_id}: the AI Camera runs its own network: use source "
            f"'imx500' with an IMX500 network (.rpk) as the model, backend imx500, together"
        )
    return setup


def _default_backend(path: Path, name: str, delegate: str | None) -> str:
    if delegate == "edgetpu":
        return "edgetpu"
    spec = models.load_manifest().get(name)
    if spec is not None and spec.delegate:
        return spec.delegate
    return BY_SUFFIX.get(path.suffix.lower(), "litert")


def load_file(path: Path | str, top_k: int = 5) -> Classifier:
    """A classifier for a model file with its embedded labels (tools and benchmarks)."""
    return load(plan(str(path), top_k=top_k))


def load(setup: ModelSetup) -> Classifier:
    """One classifier (one backend instance) for one worker."""
    backend = backends.create(setup.backend, setup.path, setup.options)
    labels = list(setup.labels) or list(getattr(backend, "labels", None) or [])
    if not labels:
        raise ConfigError(f"model {setup.path} has no labels of its own; pass --labels FILE")
    return Classifier(backend, labels, setup.name, setup.top_k)
