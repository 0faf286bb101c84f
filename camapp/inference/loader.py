"""From settings to loaded classifiers: which file, labels, normalisation and backend a
camera's model means, all checked before capture starts.

`ModelSetup` is what two cameras must share to share a classifier. Planning reads only the
manifest and the files: a TFLite model is read once (`open_model`: the graph, its metadata,
its bundled labels and record), so a file that is not a model, a model that is not an image
classifier, or labels that do not fit it fail at once with one line; `load()` then runs the
model once, so a model that cannot run fails before capture too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camapp import models
from camapp.config.schema import CameraSettings
from camapp.detect.labels import class_names
from camapp.devices import Devices
from camapp.errors import CamappError, ConfigError, echo, shorten
from camapp.inference import backend as backends
from camapp.inference import detector
from camapp.inference.backend import BackendSettings
from camapp.inference.classifier import Classifier
from camapp.inference.detector import Detector, DetectorSpec
from camapp.inference.preprocess import Roi
from camapp.tflite import graph
from camapp.tflite.modelfile import ModelFile, open_model

# A model file's kind picks its backend when neither the setting nor the manifest does.
BY_SUFFIX = {".onnx": "onnx", ".rpk": "imx500", ".hef": "hailo"}
# Backends whose device reads the labels from the network itself when no file is given.
DEVICE_LABELS = frozenset({"imx500"})


@dataclass(frozen=True, eq=False)  # compared by `key`, which names what the model is
class ModelSetup:
    path: Path
    labels: tuple[str, ...]
    label_offset: int | None  # 1: labels[0] is a background class the model lacks; None:
    # not known until the backend says how many classes it has
    name: str  # what `classification` messages report: the manifest name, else the file stem
    backend: str
    options: BackendSettings  # the backend's own settings model (inference/backend.py)
    top_k: int
    # Input normalisation, the model sees (pixel - mean) / std; None: the backend's own.
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    # The view a trained model learnt (camapp train records it): used unless the camera sets
    # its own. None: the model says nothing.
    crop: str | None = None
    roi: Roi | None = None
    sha256: str | None = None  # the file's content, where camapp read it (TFLite models)
    base: str | None = None  # the model a camapp-trained one was cut from; None: not trained
    # Where its backend opens a device (a Hailo, the AI Camera): the app's, else its own.
    devices: Devices = field(default_factory=Devices)

    @property
    def classes(self) -> tuple[str, ...]:
        """One label per class the model outputs (a leading background label left out)."""
        return self.labels[self.label_offset or 0 :]

    @property
    def trained(self) -> bool:
        """Made by `camapp train`: its classes are the user's own."""
        return self.base is not None

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for setups that may share classifiers: the same file with the same content,
        run the same way (the workers' caches are keyed by it)."""
        return (
            self.path, self.sha256, self.labels, self.backend, self.options, self.top_k,
            self.mean, self.std,
        )  # fmt: skip


Planned = ModelSetup | DetectorSpec  # what a camera runs: its frames classified, or detected
Model = Classifier | Detector  # a Planned as a worker loads it


def plan(
    model: str | None,
    labels: str | None = None,
    backend: str | None = None,
    delegate: str | None = None,
    threads: int = 1,
    top_k: int = 5,
    mean: float | None = None,
    std: float | None = None,
    numbered: bool = False,
    devices: Devices | None = None,
    file: ModelFile | None = None,
) -> ModelSetup:
    """Resolve and check a model setting; the backend is the one asked for, else the
    manifest's, else the one the file's kind implies; the normalisation the one asked for,
    else the model's metadata, else MobileNet's (127.5, 127.5). `file`: the model as read
    already (a camera's plan reads it once to tell a detector)."""
    path = models.resolve_model(model)
    name = models.display_name(path)
    chosen = backend or _default_backend(path, name, delegate)
    given: dict[str, object] = {"threads": threads}
    if delegate is not None and not (delegate == "edgetpu" == chosen):
        given["delegate"] = delegate  # refused by a backend that takes no delegate
    options = backends.configure(chosen, given)
    if not backends.reads_tflite(chosen):
        file = None
    elif file is None:
        file = open_model(path)
    if file is not None and file.kind == graph.Kind.DETECTOR:
        raise ConfigError(
            f"{shorten(path)} is not an image classifier: it is an {file.why}; "
            "run it with camapp detect"
        )
    spec = file.classifier(()) if file else None  # a model, and an image classifier
    if labels is None and chosen in DEVICE_LABELS:
        names: list[str] = []  # from the network, once its device is open (see load)
    else:
        names = _names(file or path, labels, spec.classes if spec and numbered else 0)
    offset = graph.label_offset(path, names, spec.classes, file.labels) if file and spec else None
    # None: what the backend reads from the model itself (MobileNet's 127.5 for LiteRT).
    means = (mean,) if mean is not None else spec.mean if spec else None
    stds = (std,) if std is not None else spec.std if spec else None
    return ModelSetup(
        path, tuple(names), offset, name, chosen, options, top_k, means, stds,
        devices=devices or Devices(), **_recorded(file),
    )  # fmt: skip


def _names(model: ModelFile | Path, labels: str | None, numbered: int) -> list[str]:
    """The labels asked for, else the model's own; else, for `numbered` classes, their
    numbers (tools that compare classes, not names)."""
    try:
        return models.read_labels(model, Path(labels) if labels else None)
    except ConfigError:
        if labels is None and numbered:
            return [str(i) for i in range(numbered)]
        raise


def _recorded(file: ModelFile | None) -> dict[str, Any]:
    """What a model camapp trained records of itself: the view it learnt, and its base."""
    if file is None:
        return {}
    record = file.record
    roi = tuple(record["roi"]) if record.get("roi") else None
    base = str(record.get("base") or file.path) if record else None
    return {"crop": record.get("crop"), "roi": roi, "sha256": file.sha256, "base": base}


def for_camera(
    camera: CameraSettings,
    threads: int = 1,
    devices: Devices | None = None,
    file: ModelFile | None = None,
) -> ModelSetup:
    """The camera's classifier (`file`: its model as read already, if it was)."""
    setup = plan(
        camera.model,
        camera.labels,
        camera.backend,
        camera.delegate,
        threads,
        camera.top_k,
        camera.input_mean,
        camera.input_std,
        devices=devices,
        file=file,
    )
    # The AI Camera classifies on its sensor: it is the one source, and the one backend, for it.
    if (camera.source == "imx500") != (setup.backend == "imx500"):
        raise ConfigError(
            f"camera {camera.camera_id}: the AI Camera runs its own network: use source "
            f"'imx500' with an IMX500 network (.rpk) as the model, backend imx500, together"
        )
    return setup


def plan_camera(
    camera: CameraSettings, threads: int = 1, devices: Devices | None = None
) -> Planned:
    """A camera's model as it starts: its detector when the model file is one (a TFLite file
    whose kind is detector, run by LiteRT), else its classifier; the file is read once."""
    file = None
    if camera.backend in (None, "litert"):
        path = models.resolve_model(camera.model)
        file = open_model(path) if path.suffix.lower() == ".tflite" else None
    if file is None or file.kind != graph.Kind.DETECTOR:
        return for_camera(camera, threads, devices, file)
    where = f"camera {camera.camera_id}"
    if camera.source == "imx500":
        raise ConfigError(f"{where}: the AI Camera runs its own network, not a detector")
    spec = camera_detector(camera, file, threads)
    # A label the user tracks that the detector lacks would be counted 0 for ever, silently
    # (the default track is each detector's to know or not: a custom one may lack a dog).
    unknown = [label for label in camera.track if label not in spec.names]
    if unknown and "track" in camera.model_fields_set:
        raise ConfigError(f"track: {echo(unknown[0])} is not a class of {shorten(spec.path)}")
    return spec


def camera_detector(camera: CameraSettings, file: ModelFile, threads: int) -> DetectorSpec:
    """A detector file as `camera` runs it: its labels, delegate, min_score, min_area and
    min_scores (a camera's own model, a rung of its ladder, a model `set` switches to)."""
    return plan_detector(
        str(file.path), camera.labels, camera.delegate, threads, camera.min_score,
        camera.min_area, file, camera.min_scores,
    )  # fmt: skip


def view(camera: CameraSettings, setup: Planned) -> tuple[str, Roi | None]:
    """The crop and region of interest frames are classified with: the camera's own where it
    sets them, else the ones its model was trained with, so that a trained model never runs
    on another view than the one it learnt by accident. A detector sees the camera's ROI."""
    if isinstance(setup, DetectorSpec):
        return camera.crop, camera.roi
    given = camera.model_fields_set
    crop = camera.crop if "crop" in given else setup.crop or camera.crop
    return crop, camera.roi if "roi" in given else setup.roi


def _default_backend(path: Path, name: str, delegate: str | None) -> str:
    if delegate == "edgetpu":
        return "edgetpu"
    spec = models.load_manifest().get(name)
    if spec is not None and spec.delegate:
        return spec.delegate
    return BY_SUFFIX.get(path.suffix.lower(), "litert")


def load(setup: ModelSetup, check: bool = True) -> Classifier:
    """One classifier (one backend instance) for one worker. With `check`, run once: a model
    that fails on its first invoke (an op the runtime lacks) is a set-up error, found before
    capture (the workers' own copies of a model checked so need not run again)."""
    backend = backends.create(setup.backend, setup.path, setup.options, setup.devices)
    labels = list(setup.labels) or list(getattr(backend, "labels", None) or [])
    if not labels:
        raise ConfigError(f"model {setup.path} has no labels of its own; pass --labels FILE")
    classifier = Classifier(
        backend, labels, setup.name, setup.top_k, setup.label_offset, (setup.mean, setup.std)
    )
    if not check or not backend.output.classes:  # a sensor's network runs on its frames only
        return classifier
    try:
        classifier.classify(np.zeros((8, 8, 3), np.uint8))
    except Exception as exc:
        why = shorten(exc)
        raise ConfigError(f"model {setup.path} fails on its first run: {why}") from None
    return classifier


def load_any(setup: Planned) -> Model:
    """A camera's model for one worker, run once (before capture)."""
    return load_detector(setup) if isinstance(setup, DetectorSpec) else load(setup)


def load_checked(setup: Planned) -> Model:
    """What a worker loads: a model already checked when it was planned and loaded once."""
    return Detector(setup) if isinstance(setup, DetectorSpec) else load(setup, check=False)


def load_file(
    path: Path | str, top_k: int = 5, threads: int = 1, numbered: bool = False
) -> Classifier:
    """A classifier for a model file with its embedded labels (tools and benchmarks); with
    `numbered`, a model without labels gets its class numbers as labels (tools that compare
    classes, not names)."""
    return load(plan(str(path), threads=threads, top_k=top_k, numbered=numbered))


def plan_detector(
    model: str | None,
    labels: str | None = None,
    delegate: str | None = None,
    threads: int = 1,
    min_score: float = 0.5,
    min_area: float = 0.0,
    file: ModelFile | None = None,
    min_scores: Mapping[str, float] | None = None,
) -> DetectorSpec:
    """Resolve and check a detector (default: the manifest's default detector): a model
    whose outputs fit neither family, or labels that do not fit its classes, fail here with
    one line. Labels: the file asked for, else the model's own, else the manifest's file.
    `file`: the model as read already; `min_scores`: per label, instead of `min_score`."""
    path = models.resolve_model(model or models.DEFAULT_DETECTOR)
    file = file or open_model(path)
    given: dict[str, object] = {"threads": threads}
    if delegate is not None:
        given["delegate"] = delegate
    options = backends.configure("litert", given)
    outputs = detector.outputs(path, options)
    found = detector.layout(file, outputs)  # before the labels: a classifier is refused so
    lines = _names(file, labels, 0)
    names = class_names(lines, found.classes or None, shorten(labels or path))
    unknown = sorted(set(min_scores or {}) - set(names))
    if unknown:  # a typo would lower the decoder's threshold for nothing, silently
        raise ConfigError(f"min_scores: {echo(unknown[0])} is not a class of {shorten(path)}")
    mean, std = detector.normalisation(file, found.family)
    return DetectorSpec(
        path, models.display_name(path), tuple(names), found, tuple(outputs), mean, std,
        options, min_score, min_area, tuple(sorted((min_scores or {}).items())),
    )  # fmt: skip


def load_detector(spec: DetectorSpec) -> Detector:
    """One detector for one worker, run once: a model that fails on its first invoke is a
    set-up error, found before capture."""
    found = Detector(spec)
    try:
        found.detect(np.zeros((8, 8, 3), np.uint8))
    except CamappError as exc:
        raise ConfigError(f"model {shorten(spec.path)} fails on its first run: {exc}") from None
    return found
