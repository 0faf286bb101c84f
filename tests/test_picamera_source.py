"""PiCameraSource against a stand-in that checks and lays out buffers as picamera2 does."""

from __future__ import annotations

import itertools
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from camapp.capture.base import isp_size
from camapp.capture.picamera import INSTALL_HINT, PiCameraSource
from camapp.config.load import check
from camapp.config.schema import PiCameraSettings
from camapp.errors import ConfigError, SourceError
from tests import fake_picamera2
from tests.fake_picamera2 import QUADRANT_COLOURS, ColorSpace, Rig, quadrants, solid

RED, GREEN = (255, 0, 0), (0, 255, 0)
TOLERANCE = 4  # rounding in encode + 2x2 chroma averaging + OpenCV's fixed-point decode


def open_source(rig: Rig, camera_num: int = 0, **settings) -> PiCameraSource:
    # Settings are validated where they are read, as `camapp run` reads them.
    valid = check(PiCameraSettings, settings)
    return PiCameraSource(camera_num, valid, picamera2_module=rig.module())


def assert_colour(pixels: np.ndarray, rgb: tuple[int, int, int]) -> None:
    diff = np.abs(pixels.astype(int) - np.array(rgb)).max()
    assert diff <= TOLERANCE, f"expected {rgb}, got e.g. {pixels.reshape(-1, 3)[0]} (off by {diff})"


@pytest.fixture
def rig() -> Rig:
    return Rig()


# --- configuration ---------------------------------------------------------------------------


def test_configures_main_and_lores_at_the_model_size_with_the_sensor_aspect(rig):
    source = open_source(rig)
    cam = rig.opened[0]
    config = cam.camera_configuration()
    assert cam.camera_num == 0 and cam.started
    assert config["main"]["size"] == (1280, 960)
    assert config["lores"] == config["lores"] | {"size": (298, 224), "format": "YUV420"}
    assert config["controls"]["FrameDurationLimits"] == (66667, 66667)  # 15 fps, not the 30 default
    assert config["colour_space"].name == "Smpte170m"  # what OpenCV's I420 decode assumes
    assert (source.name, source.live, source.fps) == ("picamera:0", True, 15.0)
    assert source.lores_size == (298, 224)
    source.close()


def test_the_settings_and_the_model_size_reach_the_camera_configuration():
    rig = Rig(pi5=True)
    settings = PiCameraSettings(fps=30, main_size=(640, 480), lores_format="RGB888")
    source = PiCameraSource(0, settings, model_size=192, picamera2_module=rig.module())
    config = rig.opened[0].camera_configuration()
    assert config["main"]["size"] == (640, 480)
    assert config["lores"] == config["lores"] | {"size": (256, 192), "format": "RGB888"}
    assert config["controls"]["FrameDurationLimits"] == (33333, 33333)
    assert source.fps == 30.0 and source.read().image.shape == (192, 256, 3)
    source.close()


@pytest.mark.parametrize(
    ("main", "model", "lores"),
    [
        ((1280, 960), 224, (298, 224)),
        ((960, 1280), 224, (224, 298)),
        ((1920, 1080), 224, (398, 224)),
        ((640, 480), 192, (256, 192)),
        ((1280, 960), 225, (302, 226)),  # odd model sizes round up: YUV420 needs even sizes
    ],
)
def test_lores_size_keeps_the_aspect_and_covers_the_model(main, model, lores):
    assert isp_size(main, model) == lores


@pytest.mark.parametrize(
    ("main", "model", "lores"),
    [
        ((1920, 1080), 640, (640, 360)),
        ((1080, 1920), 640, (360, 640)),
        ((768, 432), 320, (320, 180)),
    ],
)
def test_a_letterboxing_model_gets_frames_that_fit_it(main, model, lores):
    """YOLO letterboxes: its frames come at the size that fits its input, placed unscaled."""
    assert isp_size(main, model, contain=True) == lores


def test_bad_sizes_and_formats_are_config_errors(rig):
    with pytest.raises(ConfigError, match="exceeds main") as given:
        open_source(rig, main_size=(640, 480), lores_size=(800, 600))
    assert "automatic" not in str(given.value)
    with pytest.raises(ConfigError, match=r"exceeds main 200x150.*larger picamera main_size"):
        open_source(rig, main_size=(200, 150))
    with pytest.raises(ConfigError, match="even"):
        open_source(rig, lores_size=(299, 224))
    with pytest.raises(ConfigError, match="YUV420, RGB888"):
        open_source(rig, lores_format="NV12")
    with pytest.raises(ConfigError, match="fps"):
        open_source(rig, fps=0)
    with pytest.raises(ConfigError, match="main_size"):
        open_source(rig, main_size=(1281, 960))
    assert rig.opened == []  # rejected before touching the camera
    with pytest.raises(ConfigError, match="even"):
        open_source(rig, main_size=(640, 480), lores_size=(-2, 2))


# --- frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lores_format", ["YUV420", "RGB888"])
def test_a_red_scene_comes_out_red(lores_format):
    rig = Rig(scene=solid(RED), pi5=True)
    source = open_source(rig, lores_format=lores_format)
    frame = source.read()
    assert frame.image.shape == (224, 298, 3) and frame.image.dtype == np.uint8
    assert not frame.bgr
    assert_colour(frame.image, RED)
    source.close()


@pytest.mark.parametrize("lores_format", ["YUV420", "RGB888"])
@pytest.mark.parametrize("lores_size", [(298, 224), (320, 240), (160, 120)])
def test_frames_are_rgb_the_right_way_up_whatever_the_stride(lores_format, lores_size):
    # (298, 224) gets a padded stride (320) and (320, 240) none: both must decode cleanly.
    rig = Rig(scene=quadrants, pi5=True)
    source = open_source(rig, lores_size=lores_size, lores_format=lores_format)
    image = source.read().image
    width, height = lores_size
    assert image.shape == (height, width, 3)
    expected = quadrants(width, height)
    centres = [(y, x) for y in (height // 4, 3 * height // 4) for x in (width // 4, 3 * width // 4)]
    for (y, x), rgb in zip(centres, QUADRANT_COLOURS, strict=True):
        assert tuple(expected[y, x]) == rgb
        assert_colour(image[y - 4 : y + 4, x - 4 : x + 4], rgb)
    source.close()


def test_without_an_explicit_colour_space_the_stand_in_would_shift_colours():
    """Guards the guard: Rec709-encoded green decoded as BT.601 is far outside the tolerance."""
    rig = Rig(scene=solid(GREEN))
    source = open_source(rig)
    source._colour_space = ColorSpace.Rec709()
    source._cam.stop()
    source._configure_and_start(source.lores_size)  # reconfigure with the wrong colour space
    diff = np.abs(source.read().image.astype(int) - np.array(GREEN)).max()
    assert diff > 3 * TOLERANCE
    source.close()


def test_seq_counts_from_zero_and_times_come_from_the_sensor(rig):
    source = open_source(rig)
    frames = [source.read() for _ in range(3)]
    assert [f.seq for f in frames] == [0, 1, 2]
    for frame in frames:
        # The stand-in exposed each frame 20 ms before capture_request returned it.
        assert 0.015 < time.monotonic() - frame.mono < 0.5
        assert 0.015 < time.time() - frame.ts < 0.5
    assert all(w == 5.0 for w in rig.opened[0].capture_waits)  # a bounded wait, never forever
    source.close()


def test_an_implausible_sensor_timestamp_falls_back_to_now():
    rig = Rig(sensor_age_ns=30_000_000_000)  # 30 s old: another clock, not a real age
    source = open_source(rig)
    frame = source.read()
    assert 0 <= time.monotonic() - frame.mono < 0.5
    source.close()


def test_at_a_slow_frame_rate_an_older_sensor_timestamp_is_still_trusted():
    # At 0.5 fps a queued request may hold a frame exposed seconds before it is read.
    source = open_source(Rig(sensor_age_ns=3_000_000_000), fps=0.5)
    frame = source.read()
    assert 2.9 < time.monotonic() - frame.mono < 3.5
    source.close()


# --- requests are always released ------------------------------------------------------------


def test_every_request_is_released(rig):
    source = open_source(rig)
    for _ in range(5):
        source.read()
    assert len(rig.requests) == 5 and rig.unreleased == []
    source.close()


def test_a_request_is_released_when_make_array_raises(rig):
    source = open_source(rig)
    rig.make_array_error = RuntimeError("dmabuf sync failed")
    with pytest.raises(SourceError, match="dmabuf sync failed"):
        source.read()
    assert len(rig.requests) == 1 and rig.unreleased == []
    rig.make_array_error = None
    assert source.read().seq == 0  # a failed frame does not use up a sequence number
    source.close()


def test_a_request_is_released_when_conversion_raises(rig):
    source = open_source(rig)
    rig.bad_shape = True
    with pytest.raises(SourceError, match="bad frame"):
        source.read()
    assert len(rig.requests) == 1 and rig.unreleased == []
    source.close()


# --- failures --------------------------------------------------------------------------------


def test_a_capture_error_is_a_source_error(rig):
    source = open_source(rig)
    rig.capture_error = RuntimeError("Device or resource busy")
    with pytest.raises(SourceError, match="picamera:0: capture failed: Device or resource busy"):
        source.read()
    source.close()


def test_a_stalled_camera_times_out_and_cancels_the_pending_capture(rig):
    source = open_source(rig)
    rig.capture_error = TimeoutError()
    with pytest.raises(SourceError, match="no frame for 5s"):
        source.read()
    assert rig.opened[0].cancelled == 1
    source.close()


def test_a_picamera2_that_cannot_time_out_a_capture_is_refused(rig, monkeypatch):
    # Releases before cancel_all_and_flush() (2024) ignore capture_request's timeout.
    monkeypatch.delattr(fake_picamera2.Picamera2, "cancel_all_and_flush")
    with pytest.raises(ConfigError, match=r"cannot time out a capture.*python3-picamera2"):
        open_source(rig)
    assert rig.opened[0].closed  # the camera is freed for the next process


def test_missing_picamera2_is_a_config_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    with pytest.raises(ConfigError) as info:
        PiCameraSource()
    assert str(info.value) == INSTALL_HINT
    assert "sudo apt install python3-picamera2" in str(info.value)
    assert "--system-site-packages" in str(info.value)


def test_a_picamera2_that_fails_to_import_says_so_in_one_line(monkeypatch, tmp_path):
    broken = tmp_path / "picamera2"
    broken.mkdir()
    (broken / "__init__.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility.\\n"
        "Expected 96 from C header, got 88 from PyObject')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(ConfigError, match=r"failed to import: numpy\.dtype size changed") as info:
        PiCameraSource()
    assert "\n" not in str(info.value) and "deploy/README.md" in str(info.value)


def test_a_camera_that_cannot_be_opened_is_a_one_line_source_error(rig):
    with pytest.raises(SourceError, match="cannot open Pi camera 1") as info:
        open_source(rig, camera_num=1)  # the rig has one camera
    assert "\n" not in str(info.value)


def test_rgb888_lores_on_a_pi_4_fails_with_a_hint_and_frees_the_camera():
    rig = Rig(pi5=False)
    with pytest.raises(SourceError, match="needs a Pi 5"):
        open_source(rig, lores_format="RGB888")
    assert rig.opened[0].closed  # another attempt (or process) can acquire it


def test_close_stops_and_closes_once_and_read_then_returns_none(rig):
    source = open_source(rig)
    source.read()
    source.close()
    source.close()
    cam = rig.opened[0]
    assert cam.closed and not cam.started and cam.stop_count == 1
    assert source.read() is None


# --- wiring ----------------------------------------------------------------------------------


def test_open_source_builds_it_from_the_spec(monkeypatch):
    from camapp.capture import open_source as open_spec

    rig = Rig(cameras=2)
    monkeypatch.setitem(sys.modules, "picamera2", rig.module())
    source = open_spec("picamera:1")
    assert source.name == "picamera:1" and rig.opened[0].camera_num == 1
    assert source.read().image.shape == (224, 298, 3)
    source.close()
    source = open_spec("picamera", picamera=PiCameraSettings(lores_size=(320, 240)))
    assert rig.opened[1].camera_configuration()["lores"]["size"] == (320, 240)
    source.close()


def test_camapp_run_sets_the_camera_up_from_its_settings_again_after_a_reconnect(
    monkeypatch, tmp_path: Path, model_dir: Path, broker
):
    from camapp import cli

    renders = itertools.count()

    def scene(width: int, height: int) -> np.ndarray:
        if next(renders) == 1:  # the second frame fails: camapp reopens the camera
            raise RuntimeError("dmabuf sync failed")
        return quadrants(width, height)

    rig = Rig(scene=scene, pi5=True)
    monkeypatch.setitem(sys.modules, "picamera2", rig.module())
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(model_dir))
    config = tmp_path / "camapp.toml"
    config.write_text('[picamera]\nfps = 30\nmain_size = "640x480"\nlores_format = "YUV420"\n')
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = cli.main(
            [
                "run",
                "--source",
                "picamera",
                "--config",
                str(config),
                "--picamera-lores-format",  # the command line wins over the file
                "RGB888",
                "--workers",
                "1",
                "--max-frames",
                "3",
                "--mqtt-port",
                str(broker.port),
            ]
        )
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert code == 0
    assert len(rig.opened) == 2
    for cam in rig.opened:
        configured = cam.camera_configuration()
        assert configured["main"]["size"] == (640, 480)
        assert configured["lores"] == configured["lores"] | {"size": (298, 224), "format": "RGB888"}
        assert configured["controls"]["FrameDurationLimits"] == (33333, 33333)
