"""Backends are plugins: a registry keyed by name, chosen by setting or by the manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp import cli
from camapp.errors import ConfigError
from camapp.inference import backend, loader
from tests.conftest import SHARED_MODELS, camapp_env


def test_a_new_backend_is_one_file_and_its_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tests.plugins.colour_backend  # noqa: F401  (registers "colour")

    assert "colour" in backend.names()
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 2] = 220  # red, in OpenCV's BGR order
    photo = tmp_path / "red.png"
    cv2.imwrite(str(photo), image)
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    model = tmp_path / "none.bin"  # the plugin reads no file; camapp only checks it exists
    model.write_bytes(b"")
    args = ["classify", "--backend", "colour", "--model", str(model), "--labels", str(labels)]
    assert cli.main([*args, "--json", str(photo)]) == 0
    out = capsys.readouterr().out
    assert '"label": "red"' in out and '"score": 0.8627' in out


def test_backends_are_discovered_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file dropped beside the built-in backends is found (pkgutil), with nothing to edit."""
    from camapp.inference import backends

    plugin = Path(__file__).parent / "plugins" / "colour_backend.py"
    (tmp_path / "dropped_in.py").write_text(plugin.read_text().replace('"colour"', '"dropped"'))
    monkeypatch.setattr(backends, "__path__", [*backends.__path__, str(tmp_path)])
    backend.names()  # every built-in registered, then a copy of the registry, undone after
    monkeypatch.setattr(backend, "_REGISTRY", dict(backend._REGISTRY))
    backend._discover.cache_clear()
    try:
        assert {"dropped", "edgetpu", "hailo", "imx500", "litert", "onnx"} <= set(backend.names())
    finally:
        backend._discover.cache_clear()
        sys.modules.pop("camapp.inference.backends.dropped_in", None)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--backend", "onnx", "--delegate", "libx.so"],
            "backend onnx: unknown setting 'delegate'",
        ),
        (["--backend", "colour", "--delegate", "edgetpu"], "backend colour: unknown setting"),
    ],
)
def test_a_setting_the_backend_does_not_take_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    """Each backend declares its own settings: a delegate given to ONNX Runtime is refused,
    where a fixed (threads, delegate) pair would have dropped it silently."""
    import tests.plugins.colour_backend  # noqa: F401  (registers "colour")

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    photo = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    assert cli.main(["classify", *args, "--model", str(model), photo]) == 2
    err = capsys.readouterr().err
    assert err.count("camapp: error: ") == 1 and needle in err, err


def test_a_backend_gets_its_own_settings_model() -> None:
    from camapp.inference.backends.litert import LiteRtSettings

    settings = backend.configure("litert", {"threads": 2, "delegate": "libx.so"})
    assert isinstance(settings, LiteRtSettings) and settings.delegate == "libx.so"
    assert type(backend.configure("hailo", {"threads": 2})) is backend.BackendSettings
    with pytest.raises(ConfigError, match=r"^backend litert: threads: must be between 1 and 64"):
        backend.configure("litert", {"threads": 0})


@pytest.fixture
def default_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`--model` unset means the default model in the model folder: make that the test's own,
    so a test does not depend on what was fetched into the checkout's models/."""
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(model_dir))
    return model_dir


def test_the_manifest_picks_the_edge_tpu_backend_by_itself(default_model: Path) -> None:
    from camapp import models

    path = models.fetch("mobilenet_v2_edgetpu", default_model, mirror=SHARED_MODELS)
    labels = str(SHARED_MODELS / "imagenet_labels.txt")
    assert loader.plan(str(path), labels).backend == "edgetpu"
    assert loader.plan(None).backend == "litert"  # the default model runs on the CPU
    assert loader.plan(None, backend="edgetpu").backend == "edgetpu"  # the setting wins


def test_an_unknown_backend_is_a_usage_error(default_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'tpu' \(known: .*edgetpu.*litert"):
        loader.plan(None, backend="tpu")


@pytest.fixture(scope="session")
def fake_edgetpu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the stand-in libedgetpu.so.1 (tests/fake_libedgetpu.c): with
    $FAKE_EDGETPU unset it finds no Edge TPU, "attached" makes a delegate, "crash" crashes."""
    directory = tmp_path_factory.mktemp("libedgetpu")
    source = Path(__file__).with_name("fake_libedgetpu.c")
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(directory / "libedgetpu.so.1"), str(source)],
        check=True,
    )
    return directory


def edgetpu_run(model_dir: Path, library: Path, mode: str, args: list[str]):
    env = {**camapp_env(model_dir), "LD_LIBRARY_PATH": str(library), "FAKE_EDGETPU": mode}
    return subprocess.run(
        [sys.executable, "-m", "camapp", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


PHOTO = str(SHARED_MODELS.parent / "media" / "cat.bmp")
CLIP = str(SHARED_MODELS.parent / "media" / "car-detection.mp4")


def test_a_missing_coral_is_one_line_and_exit_2(model_dir: Path, fake_edgetpu: Path) -> None:
    from tests.test_errors import one_line_error

    model = str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant_edgetpu.tflite")
    labels = str(SHARED_MODELS / "imagenet_labels.txt")
    for args in (  # the manifest picks the Edge TPU for this file: no flag needed
        ["classify", "--model", model, "--labels", labels, PHOTO],
        ["run", "--source", CLIP, "--model", model, "--labels", labels, "--max-frames", "1"],
    ):
        proc = edgetpu_run(model_dir, fake_edgetpu, "absent", args)
        one_line_error(proc, 2, "no Edge TPU found", "libedgetpu is installed", "lsusb")


def test_an_edge_tpu_delegate_is_made_and_used(model_dir: Path, fake_edgetpu: Path) -> None:
    """The stand-in makes a delegate that leaves every node to the CPU: a CPU model then
    gives its usual answer through the edgetpu backend, after the probe passed."""
    model = str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite")
    args = ["classify", "--backend", "edgetpu", "--model", model, "--json", PHOTO]
    proc = edgetpu_run(model_dir, fake_edgetpu, "attached", args)
    assert proc.returncode == 0, proc.stderr
    assert '"label": "Egyptian cat"' in proc.stdout


def test_a_runtime_crash_in_libedgetpu_is_one_line_naming_versions(
    model_dir: Path, fake_edgetpu: Path
) -> None:
    """libedgetpu1-std 16.0 (TensorFlow 2.5) with a newer runtime: the first interpreter is
    made in a child process, so its crash becomes exit 2 naming both versions and the fix."""
    from importlib.metadata import version

    from tests.test_errors import one_line_error

    model = str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite")
    for args in (
        ["classify", "--backend", "edgetpu", "--model", model, PHOTO],
        ["run", "--source", CLIP, "--backend", "edgetpu", "--model", model, "--max-frames", "1"],
    ):
        proc = edgetpu_run(model_dir, fake_edgetpu, "crash", args)
        runtime = f"ai-edge-litert {version('ai-edge-litert')}"
        one_line_error(
            proc, 2, "Edge TPU runtime crashed (SIGSEGV)", runtime,
            "libedgetpu.so.1 BuildLabel(COMPILER=stand-in", "RuntimeVersion(14)",
            "install a libedgetpu built for the runtime's TensorFlow version",
        )  # fmt: skip


def test_devices_open_once_close_newest_first_and_keep_no_failed_open() -> None:
    """The one registry of open devices (camapp/devices.py), owned by whoever made it."""
    from camapp.devices import Devices

    closed: list[str] = []
    devices = Devices()

    def failing() -> str:
        raise ConfigError("device in use")

    with pytest.raises(ConfigError, match="in use"):
        devices.get("hailo", failing, closed.append)
    assert devices.get("hailo", lambda: "hailo#1", closed.append) == "hailo#1"  # retried
    assert devices.get("hailo", lambda: "hailo#2", closed.append) == "hailo#1"  # once
    devices.get("imx500", lambda: "imx500#1", closed.append)
    devices.close()
    assert closed == ["imx500#1", "hailo#1"]
    assert devices.get("hailo", lambda: "hailo#3", closed.append) == "hailo#3"  # open again
    del devices  # an owner that never closes: its devices go with it
    assert closed == ["imx500#1", "hailo#1", "hailo#3"]
