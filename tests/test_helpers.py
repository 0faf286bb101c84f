"""The test helpers themselves: a child camapp never outlives its test."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import reap_children, start_camapp
from tests.mqtt_helpers import free_port


def test_a_looping_run_left_by_a_failed_test_is_killed(model_dir: Path, photos_clip) -> None:
    video, _ = photos_clip
    # As a test that fails before its own terminate() would leave it: running forever.
    looping = ["run", "--source", str(video), "--loop", "--mqtt-port", str(free_port())]
    proc = start_camapp(looping, model_dir)
    assert proc.poll() is None
    reap_children()
    assert proc.returncode is not None
