"""What a `set` command can do besides changing settings: switch a camera's model, or save
its next frame into its dataset. Each checks its value first (`prepare`, on the MQTT network
thread) and returns what applies it, so that a command is applied all or nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from camapp.capture.base import Frame
from camapp.config.schema import CameraSettings
from camapp.errors import CamappError, ConfigError
from camapp.inference import loader
from camapp.runtime.camera import Camera
from camapp.runtime.controls import ControlError

log = logging.getLogger(__name__)


class ModelSwitch:
    """`{"model": NAME_OR_PATH}`: the model is planned and run once here (a bad one is
    rejected, the camera keeps its own); the workers load it at their next frame of this
    camera, while frames in flight finish on the old one."""

    def __init__(
        self,
        camera: Camera,
        settings: CameraSettings,
        threads: int,
        switched: Callable[[loader.ModelSetup], None] | None = None,
    ) -> None:
        """`switched(setup)` is told of each switch (Home Assistant's entities follow)."""
        self._camera = camera
        self._switched = switched
        self._settings = settings
        self._threads = threads
        # The names the camera's own models are shown by (a file's is its stem): what Home
        # Assistant's model select sends back.
        self._known = {setup.name: str(setup.path) for setup in camera.ladder}

    def prepare(self, value: Any) -> Callable[[], None]:
        if not isinstance(value, str) or not value.strip():
            raise ControlError("model: must be a model name or a model file's path")
        model = self._known.get(value, value)
        settings = self._settings.model_copy(update={"model": model, "labels": None})
        try:
            devices = self._camera.ladder[0].devices  # the app's: a device is opened once
            setup = loader.for_camera(settings, self._threads, devices)
            loader.load(setup)
        except CamappError as exc:
            raise ControlError(f"model: {exc}") from None
        return lambda: self._switch(setup)

    def _switch(self, setup: loader.ModelSetup) -> None:
        self._camera.switch((setup,))
        log.info("camera %s: classifying with %s", self._camera.camera_id, setup.name)
        if self._switched is not None:
            self._switched(setup)

    def state(self) -> dict[str, Any]:
        return {"model": self._camera.current.name}


class Capture:
    """`{"capture": LABEL}`: the camera's next frame goes into DATASET/LABEL/ (a Home
    Assistant button can send it)."""

    def __init__(self, camera: Camera) -> None:
        self._camera = camera

    def prepare(self, value: Any) -> Callable[[], None]:
        from camapp.training.dataset import check_label

        if not isinstance(value, str):
            raise ControlError("capture: must be a label (the class the frame shows)")
        try:
            label = check_label(value)
        except ConfigError as exc:
            raise ControlError(f"capture: {exc}") from None
        return lambda: self._camera.request_capture(label)


def save_frame(dataset: Path, camera: Camera, frame: Frame, label: str) -> None:
    """What the capture thread calls with a frame a `capture` command asked for: the whole
    frame, with the view it is classified with in its sidecar (training applies the same)."""
    from camapp.training.dataset import save_frame

    image = frame.image if frame.bgr else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    plan = camera.plan
    sidecar = {
        "camera": camera.camera_id,
        "frame": frame.seq,
        "crop": plan.crop,
        "roi": list(plan.roi) if plan.roi else None,
        "model": camera.current.name,
    }
    path = save_frame(dataset, label, image, sidecar)
    log.info("camera %s: saved frame %d as %s", camera.camera_id, frame.seq, path)
