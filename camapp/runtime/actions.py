"""What a `set` command can do besides changing settings: switch a camera's model, save its
next frame into its dataset, or replace a detector camera's zones. Each checks its value
first (`prepare`) and returns what applies it, so that a command is applied all or nothing.
A `capture` or `zones` is checked and applied on the MQTT network thread (or the live
view's); a `model` loads, so its command waits for the handler's own thread
(publish/commands.py)."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from camapp import datasets, models
from camapp.capture.base import Frame
from camapp.config.schema import CameraSettings
from camapp.detect.zones import Zone, parse_zones
from camapp.errors import CamappError, ConfigError, echo, os_reason, shorten
from camapp.inference import ladder, loader
from camapp.inference.detector import DetectorSpec
from camapp.inference.preprocess import Roi, roi_slices
from camapp.runtime.camera import Camera
from camapp.runtime.controls import ControlError
from camapp.tflite.graph import Kind
from camapp.tflite.modelfile import open_model

log = logging.getLogger(__name__)

MIB = 1 << 20
# Trained models looked at in a dataset folder (the newest): bounds what a scan reads.
MAX_TRAINED = 50
# The one answer for a model that is neither known, nor in the zoo, nor in an allowed folder,
# whether or not such a file exists: a broker client cannot probe the filesystem with it.
NOT_OFFERED = (
    "model: not one this camera offers (a name its model select shows, a zoo model, or a "
    "file in the models folder or model_folders)"
)


class KnownModels:
    """The models a camera switches to by the name it shows (Home Assistant's select sends it
    back): every model it has run, and the models trained into its dataset folder (or beside
    it as the live view writes them, `<camera_id>-*.tflite`)."""

    def __init__(self, camera_id: str, dataset: Path, setups: Iterable[loader.Planned]) -> None:
        self._camera_id = camera_id
        self._dataset = Path(dataset)
        self._lock = threading.Lock()
        self._run: dict[str, Path] = {}
        for setup in setups:
            self.ran(setup)

    def ran(self, setup: loader.Planned) -> None:
        with self._lock:
            self._run[setup.name] = setup.path

    def trained(self) -> dict[str, Path]:
        """Name -> file of the trained models in the dataset folder, newest first."""
        found = [*self._dataset.glob("*.tflite"),
                 *self._dataset.parent.glob(f"{self._camera_id}-*.tflite")]  # fmt: skip
        newest = sorted(found, key=_mtime, reverse=True)[:MAX_TRAINED]
        return {models.display_name(path): path for path in newest if _classes(path) is not None}

    def named(self) -> dict[str, Path]:
        """Every model known by name; a model the camera ran wins over a trained file of the
        same name."""
        with self._lock:
            run = dict(self._run)
        return self.trained() | run

    def options(self, detectors: bool = False) -> tuple[str, ...]:
        """What the model select offers: the known models, then the fetched zoo; a detector
        camera's only the detectors, any other camera's all but the detectors (which it
        would refuse)."""
        named = self.named()
        names = tuple(dict.fromkeys((*named, *models.fetched())))
        return tuple(
            n for n in names if (_kind(str(named.get(n) or n)) == Kind.DETECTOR) == detectors
        )

    def labels(self) -> tuple[str, ...]:
        """The classes of every trained model the camera has run: its capture buttons."""
        with self._lock:
            paths = list(self._run.values())
        classes = (found for found in map(_classes, paths) if found is not None)
        return tuple(dict.fromkeys(label for labels in classes for label in labels))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@dataclass(frozen=True, slots=True)
class _About:
    """What the select and the capture buttons need of a model file."""

    kind: Kind
    classes: tuple[str, ...] | None  # its classes when `camapp train` made it, else None


def _kind(model: str) -> Kind | None:
    """What sort of model a name or file is; None for what is no model one can read."""
    try:
        path = models.resolve_model(model)
    except CamappError:
        return None
    about = _about(path)
    return about.kind if about else None


def _classes(path: Path) -> tuple[str, ...] | None:
    """The classes of a model `camapp train` made; None for any other model or file."""
    about = _about(path)
    return about.classes if about else None


def _about(path: Path) -> _About | None:
    """A model file read once as it is (size, mtime): a zone change re-announces the select
    on the network thread, which must not parse every model again; None for what is no model
    one can read (open_model refuses a FIFO before opening it)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _about_file(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _about_file(path: str, size: int, mtime_ns: int) -> _About | None:
    try:
        file = open_model(Path(path))
    except CamappError:
        return None
    return _About(file.kind, tuple(file.labels) if file.record else None)


class ModelSwitch:
    """`{"model": NAME_OR_PATH}`: a model the camera offers (`allowed`), of at most
    `model_max_mb`, is planned and run once here (a bad one is rejected, the camera keeps its
    own); the workers load it at their next frame of this camera, while frames in flight
    finish on the old one."""

    def __init__(
        self,
        camera: Camera,
        settings: CameraSettings,
        threads: int,
        known: KnownModels,
        switched: Callable[[loader.Planned], None] | None = None,
    ) -> None:
        """`switched(setup)` is told of each switch (Home Assistant's entities follow)."""
        self._camera = camera
        self._switched = switched
        self._settings = settings
        self._threads = threads
        self.known = known

    def prepare(self, value: Any) -> Callable[[], None]:
        if not isinstance(value, str) or not value.strip():
            raise ControlError("model: must be a model name or a model file's path")
        model = self.allowed(value)
        try:
            self._check_size(models.resolve_model(model))
            # Planned as the camera's own (its devices: a device is opened once): a detector
            # camera's a detector of its tracked labels, a classifier camera's a classifier.
            setup = ladder.stand_in(self._settings, self._camera.ladder[0], model, self._threads)
            loader.load_any(setup)
        except CamappError as exc:
            raise ControlError(f"model: {exc}") from None
        except OSError as exc:  # a name the file system refuses (too long, in a file...)
            raise ControlError(f"model: cannot read {shorten(model)}: {os_reason(exc)}") from None
        return lambda: self._switch(setup)

    def allowed(self, value: str) -> str:
        """The model `value` means if the camera offers it, else the one refusal (NOT_OFFERED):
        a known name, a zoo name, or a file in the models folder or `model_folders` (the path
        as written, made absolute without following links: what is opened lies there)."""
        named = self.known.named()
        if value in named:
            return str(named[value])
        if value in models.load_manifest():
            return value
        if not _path_like(value):
            raise ControlError(NOT_OFFERED)
        path = os.path.abspath(os.path.expanduser(value))
        folders = [models.default_model_dir(), *map(Path, self._settings.model_folders)]
        if any(_within(path, folder) for folder in folders):
            return path
        if os.path.realpath(path) in {os.path.realpath(p) for p in named.values()}:
            return path  # a known model by its file (the live view sends its trained one's)
        raise ControlError(NOT_OFFERED)

    def _check_size(self, path: Path) -> None:
        """Before anything is read: a model file of more than `model_max_mb` is refused."""
        try:
            size, limit = path.stat().st_size, self._settings.model_max_mb
        except OSError as exc:
            raise ConfigError(f"cannot read model {shorten(path.name)}: {os_reason(exc)}") from None
        if size > limit * MIB:
            raise ConfigError(
                f"{shorten(path.name)} is {size / MIB:.0f} MiB, over model_max_mb ({limit:g} MiB)"
            )

    def _switch(self, setup: loader.Planned) -> None:
        """The model switched to is the camera's only rung: its ladder is not rebuilt (that
        would time models on the handler's thread while the camera runs)."""
        self._camera.switch((setup,))
        self.known.ran(setup)
        doing = "detecting" if isinstance(setup, DetectorSpec) else "classifying"
        log.info("camera %s: %s with %s", self._camera.camera_id, doing, setup.name)
        if self._switched is not None:
            self._switched(setup)

    def state(self) -> dict[str, Any]:
        return {"model": self._camera.current.name}


def _path_like(value: str) -> bool:
    """Whether `value` can name a file at all: no NUL, and encodable as a file name (a lone
    surrogate is not), so that no file system call raises on it."""
    try:
        return b"\0" not in os.fsencode(value)
    except UnicodeError:
        return False


def _within(path: str, folder: Path) -> bool:
    return Path(path).is_relative_to(os.path.abspath(os.path.expanduser(folder)))


@dataclass(frozen=True)
class DatasetLimits:
    """How far a camera's dataset may grow: images per class, bytes in all, and the free disk
    always left. A `capture` past them is refused, and so is any frame saved past them."""

    folder: Path
    max_images: int
    max_bytes: int
    min_free: int

    @classmethod
    def of(cls, settings: CameraSettings, folder: Path) -> DatasetLimits:
        return cls(
            Path(folder),
            settings.dataset_max_images,
            int(settings.dataset_max_mb * MIB),
            int(settings.dataset_min_free_mb * MIB),
        )

    def check(self, label: str) -> None:
        """Raise ConfigError naming the limit one more frame of `label` would pass."""
        free = shutil.disk_usage(_existing(self.folder)).free
        if free < self.min_free:
            raise ConfigError(
                f"{free // MIB} MiB free on the dataset's disk, under dataset_min_free_mb "
                f"({self.min_free // MIB} MiB)"
            )
        images = _count_images(self.folder / label, self.max_images)
        if images >= self.max_images:
            raise ConfigError(
                f"class {label} holds {images} images, dataset_max_images ({self.max_images})"
            )
        if _size(self.folder, self.max_bytes) >= self.max_bytes:
            raise ConfigError(f"the dataset holds dataset_max_mb ({self.max_bytes // MIB} MiB)")


def _existing(folder: Path) -> Path:
    """The folder, or its nearest parent that exists (a dataset's first frame makes it)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _count_images(folder: Path, limit: int) -> int:
    """The images of a class folder, counted up to `limit` (a scan is bounded)."""
    count = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                count += entry.name.lower().endswith(datasets.IMAGE_SUFFIXES)
                if count >= limit:
                    break
    except OSError:  # none yet (or unreadable: saving then says why)
        return 0
    return count


def _size(folder: Path, limit: int) -> int:
    """Bytes of the files in a dataset (its root and class folders), added up to `limit`."""
    total, pending = 0, [folder]
    while pending and total < limit:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and len(pending) < 10_000:
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:  # gone meanwhile, or unreadable: nothing of it can be counted
            continue
    return total


class Crops(Protocol):
    """A detector camera's tracked objects, whose crops a `capture` with `object` saves
    (publish/objects.py's ObjectsSink)."""

    @property
    def crop_pending(self) -> bool: ...

    def tracking(self, label: str) -> bool: ...

    def request_crop(self, label: str, of: str) -> None: ...


class Capture:
    """`{"capture": LABEL}`: the camera's next frame goes into DATASET/LABEL/ (a Home
    Assistant button can send it); with `"object": "person"` (a detector camera's `crops`),
    the crop of its best tracked person in the next processed frame does. At most
    `per_minute` a minute, within the dataset's limits, and one at a time: each refusal says
    why, on `error`."""

    options = ("object",)

    def __init__(
        self, camera: Camera, limits: DatasetLimits, per_minute: int, crops: Crops | None = None
    ) -> None:
        self._camera = camera
        self._limits = limits
        self._crops = crops
        self._taken: deque[float] = deque(maxlen=per_minute)  # when the latest were accepted

    def prepare(self, value: Any, object: Any = None) -> Callable[[], None]:
        if not isinstance(value, str):
            raise ControlError("capture: must be a label (the class the frame shows)")
        try:
            label = datasets.check_label(value)
            self._check_rate()
            self._check_object(object)
            self._limits.check(label)
        except ConfigError as exc:
            raise ControlError(f"capture: {exc}") from None
        return lambda: self._take(label, object)

    def _check_rate(self) -> None:
        taken = self._taken
        if len(taken) == taken.maxlen and time.monotonic() - taken[0] < 60:
            raise ConfigError(f"more than {taken.maxlen} a minute (capture_per_minute)")
        # The crop's slot first: a crop leaves it only once it is in the camera's.
        if (self._crops and self._crops.crop_pending) or self._camera.capture_pending:
            raise ConfigError("the previous capture still waits for a frame")

    def _check_object(self, of: Any) -> None:
        """An object's crop: a label the camera tracks an object of now."""
        if of is None:
            return
        if self._crops is None:
            raise ConfigError("object: only a detector camera saves an object's crop")
        if not isinstance(of, str):
            raise ConfigError("object: must be a tracked label, e.g. person")
        if not self._crops.tracking(of):
            raise ConfigError(f"object: no {echo(of)} is tracked now")

    def _take(self, label: str, of: str | None) -> None:
        self._taken.append(time.monotonic())
        if of is None:
            self._camera.request_capture(label)
        elif self._crops is not None:
            self._crops.request_crop(label, of)


class SetZones:
    """`{"zones": [{"name": ..., "points": [[x, y], ...]}, ...]}`: a detector camera's zones,
    all of them at once (an empty list: none). Checked as the settings' zones are
    (`parse_zones`: `zone_points`, unique names); `apply` hands them to the camera's sink,
    which takes them between two frames and says which are in force (`current`, as settings
    write them); `changed` (Home Assistant's entities, as a model switch's `switched`) is
    told after."""

    def __init__(
        self,
        apply: Callable[[Sequence[Zone]], None],
        current: Callable[[], list[dict[str, Any]]],
        changed: Callable[[Sequence[Zone]], None] | None = None,
    ) -> None:
        self._apply = apply
        self._current = current
        self._changed = changed

    def prepare(self, value: Any) -> Callable[[], None]:
        shape = 'zones: must be a list of {"name": ..., "points": [[x, y], ...]} objects'
        if not isinstance(value, list):
            raise ControlError(shape)
        if not all(isinstance(entry, dict) and set(entry) == {"name", "points"} for entry in value):
            raise ControlError(shape)
        try:
            zones = parse_zones((entry["name"], entry["points"]) for entry in value)
        except ConfigError as exc:
            raise ControlError(f"zones: {exc}") from None
        return lambda: self._set(tuple(zones))

    def _set(self, zones: tuple[Zone, ...]) -> None:
        self._apply(zones)
        log.info("zones now %s", ", ".join(z.name for z in zones) or "none")
        if self._changed is not None:
            self._changed(zones)

    def state(self) -> dict[str, Any]:
        """What `config` says of the zones in force."""
        return {"zones": self._current()}


def keep_crop(
    limits: DatasetLimits, camera: Camera, picture: Frame, label: str, box: Roi, of: str
) -> None:
    """From the results thread: the capture thread saves the crop of `box` in `picture`
    before its next frame, so the disk write never holds up the results in order."""
    camera.keep_next(lambda _next: save_frame(limits, camera, picture, label, box, of))


def save_frame(
    limits: DatasetLimits,
    camera: Camera,
    frame: Frame,
    label: str,
    box: Roi | None = None,
    of: str | None = None,
) -> None:
    """What the capture thread (and the live view's labelling) calls with a frame to keep:
    the whole frame, with the view it is classified with in its sidecar (training applies the
    same); or the crop of an object's `box` (fractions of the frame), the pixels a crop
    classifier is given (`roi_slices`), to be trained stretched. Refused past the dataset's
    limits."""
    limits.check(label)
    image = frame.image
    plan = camera.plan
    view = {"crop": plan.crop, "roi": list(plan.roi) if plan.roi else None}
    if box is not None:
        rows, cols = roi_slices(image.shape, box)
        image = image[rows, cols]
        view = {"crop": "stretch", "roi": None, "object": of, "box": list(box)}
    image = image if frame.bgr else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    sidecar = {"camera": camera.camera_id, "frame": frame.seq, **view,
               "model": camera.current.name}  # fmt: skip
    path = datasets.save_frame(limits.folder, label, np.ascontiguousarray(image), sidecar)
    log.info("camera %s: saved frame %d as %s", camera.camera_id, frame.seq, path)
