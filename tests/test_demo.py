"""`make demo`: it publishes to a throwaway broker of its own, never to the broker on the
usual port (the one a Home Assistant listens to), unless asked."""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_MEDIA, camapp_env
from tests.mqtt_helpers import Broker, Subscriber
from tests.web_helpers import still_clip

USUAL_PORT = 1883


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def usual_broker(tmp_path: Path) -> Iterator[int]:
    """The broker on localhost:1883 a user's Home Assistant would listen to: the one there,
    else one started there for the test."""
    if answers(USUAL_PORT):
        yield USUAL_PORT
        return
    broker = Broker(tmp_path)
    broker.conf.write_text(broker.conf.read_text().replace(f" {broker.port} ", f" {USUAL_PORT} "))
    broker.port = USUAL_PORT
    broker.start()
    yield USUAL_PORT
    broker.stop()


def demo(model_dir: Path, clip: Path, *make_args: str) -> subprocess.CompletedProcess[str]:
    """`make demo` as a user runs it, but for set-up (done) and with a short clip, every
    frame of it."""
    args = [f"DEMO_SOURCE={clip}", "DEMO_ARGS=--no-drop", *make_args]
    return subprocess.run(
        ["make", "-s", "-o", "setup", "demo", *args],
        cwd=REPO,
        env={**camapp_env(model_dir), "PATH": f"{camapp_env(model_dir)['PATH']}:/usr/sbin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_keeps_to_a_broker_of_its_own(
    usual_broker: int, model_dir: Path, tmp_path: Path
) -> None:
    clip = still_clip(tmp_path / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp", frames=10)
    watch = Subscriber(usual_broker, ["camapp/demo/#", "homeassistant/#"])
    try:
        proc = demo(model_dir, clip)
        marker = f"camapp/demo/marker-{uuid.uuid4().hex}"
        watch.publish(marker, "after the demo")  # arrives after anything the demo sent
        watch.wait_for(lambda: any(m.topic == marker for m in watch.messages))
    finally:
        watch.close()
    assert proc.returncode == 0, proc.stderr[-800:]
    live = [m.topic for m in watch.messages if not m.retain and m.topic != marker]
    assert live == [], live  # nothing of the demo reached the usual broker
    assert proc.stdout.count("demo frame") == 10
    [port] = re.findall(r"throwaway broker of its own, 127\.0\.0\.1:(\d+)", proc.stdout)
    assert int(port) != usual_broker and not answers(int(port))  # gone with the demo


def topics(sub: Subscriber) -> list[str]:
    return [m.topic for m in sub.messages]


def test_the_demo_uses_the_broker_it_is_given(model_dir: Path, tmp_path: Path) -> None:
    clip = still_clip(tmp_path / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp", frames=5)
    broker = Broker(tmp_path).start()
    try:
        proc = demo(model_dir, clip, f"DEMO_BROKER=127.0.0.1:{broker.port}")
        assert proc.returncode == 0, proc.stderr[-800:]
        assert "throwaway" not in proc.stdout and proc.stdout.count("demo frame") == 5
        # Asked for: Home Assistant discovery and the retained state are there.
        later = Subscriber(broker.port, ["homeassistant/#", "camapp/demo/availability"])
        try:
            later.wait_for(
                lambda: any(m.topic.startswith("homeassistant/") for m in later.messages)
            )
            later.wait_for(lambda: any(m.topic.endswith("availability") for m in later.messages))
        finally:
            later.close()
    finally:
        broker.stop()
