"""Shared fixtures: the real model (fetched through camapp's own verified fetch), the real
sample clips, a private mosquitto, and a way to run the real `camapp` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camapp import models
from camapp.capture.opencv_setup import configure_opencv
from tests.mqtt_helpers import Broker, Subscriber

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_MEDIA = SHARED / "media"
SAMPLES = REPO / "sample_videos"


@pytest.fixture(scope="session", autouse=True)
def opencv_set_up() -> None:
    """OpenCV set up as `camapp` does at start-up, before any capture opens."""
    configure_opencv()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding the default model, fetched from the CI mirror and verified."""
    directory = tmp_path_factory.mktemp("models")
    models.fetch(models.DEFAULT_MODEL, directory, mirror=SHARED_MODELS)
    return directory


@pytest.fixture(scope="session")
def model_path(model_dir: Path) -> Path:
    return models.resolve_model(None, model_dir)


@pytest.fixture(scope="session")
def labels(model_path: Path) -> list[str]:
    return models.read_labels(model_path)


@pytest.fixture(scope="session")
def photos_clip() -> tuple[Path, dict]:
    """The three-scene clip built by sample_videos/build.py, with its expected labels."""
    video, meta = SAMPLES / "photos.mp4", SAMPLES / "photos.json"
    if not video.is_file() or not meta.is_file():
        subprocess.run([sys.executable, str(SAMPLES / "build.py")], check=True)
    return video, json.loads(meta.read_text())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def subscriber_factory() -> Iterator:
    made: list[Subscriber] = []

    def make(port: int, topics: list[str], **kwargs: object) -> Subscriber:
        sub = Subscriber(port, topics, **kwargs)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def camapp_env(model_dir: Path) -> dict[str, str]:
    return {**os.environ, "CAMAPP_MODEL_DIR": str(model_dir), "PYTHONPATH": str(REPO)}


# Every child start_camapp made, so that none outlives its test: a failed assertion
# before a test's own terminate() would otherwise leave a `--loop` run burning CPU.
_children: list[subprocess.Popen[str]] = []


def start_camapp(args: list[str], model_dir: Path, **kwargs: object) -> subprocess.Popen[str]:
    """Start the real command line in a child process, for tests that signal or watch it."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    proc = subprocess.Popen(
        [sys.executable, "-m", "camapp", *args], env=camapp_env(model_dir), text=True, **options
    )
    _children.append(proc)
    return proc


def reap_children() -> None:
    """Kill whatever start_camapp started that still runs."""
    while _children:
        proc = _children.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(autouse=True)
def no_stray_camapp() -> Iterator[None]:
    yield
    reap_children()


def run_camapp(args: list[str], model_dir: Path, timeout: float = 60, **kwargs: object):
    """Run the real command line in a child process, as a user or systemd would."""
    return subprocess.run(
        [sys.executable, "-m", "camapp", *args],
        env=camapp_env(model_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def make_classifier(model_path: Path, labels: list[str] | None = None, top_k: int = 5):
    """A LiteRT classifier as a worker holds one."""
    from camapp.devices import Devices
    from camapp.inference import backend
    from camapp.inference.classifier import Classifier

    loaded = backend.create("litert", model_path, backend.configure("litert", {}), Devices())
    names = labels if labels is not None else models.read_labels(model_path)
    return Classifier(loaded, names, models.display_name(model_path), top_k)


def single_camera(source, classifiers, sinks, drop, controls, *, max_frames=None,
                  duration=None, motion=None, stopping=None, crop="center"):  # fmt: skip
    """A one-camera pipeline, as `camapp run --source ...` builds it, its workers holding the
    given classifiers: (pipeline, camera)."""
    from camapp.inference.backend import BackendSettings
    from camapp.inference.loader import ModelSetup
    from camapp.runtime.camera import CameraPlan
    from camapp.runtime.pipeline import Pipeline

    first = classifiers[0]
    spec = first.preprocess.spec
    setup = ModelSetup(Path(first.model), tuple(first.labels), 0, first.model, "litert",
                       BackendSettings(), first.top_k, spec.mean, spec.std)  # fmt: skip
    pipeline = Pipeline(duration, stopping)
    pool = pipeline.add_pool(len(classifiers), load=_not_loaded)
    pool.seed(setup, classifiers)
    plan = CameraPlan("cam0", crop, None, max_frames, motion)
    return pipeline, pipeline.add_camera(plan, (setup,), source, sinks, controls, pool, drop)


def _not_loaded(setup):
    raise AssertionError(f"a worker asked for a model the test did not give it: {setup.name}")


def lone_queue(maxsize: int, drop_oldest: bool, workers: int = 2):
    """One camera's frame queue on a hub of `workers`: (hub, queue)."""
    from camapp.runtime.frames import Hub

    hub = Hub(workers)
    return hub, hub.queue(None, maxsize, drop_oldest)


def run_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`camapp <args>` in this process (so a stand-in module is seen): exit code, stderr.
    The signal handlers camapp installs are put back after it."""
    import signal

    from camapp import cli

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = cli.main(args)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return code, capsys.readouterr().err
