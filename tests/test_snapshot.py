"""Snapshots for Home Assistant's MQTT `image` entity: the real `camapp run`, a real mosquitto,
three cameras on a still clip with `snapshot_interval` 3600, 1 and 0."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_MEDIA, run_camapp
from tests.mqtt_helpers import Subscriber
from tests.web_helpers import decode_jpeg, still_clip


def test_snapshots_on_state_changes_every_interval_and_retained(
    tmp_path: Path, model_dir: Path, broker, subscriber_factory
) -> None:
    clip = still_clip(tmp_path / "cat.mp4", SHARED_MEDIA / "cat.bmp", size=(800, 600))
    cameras = {"once": 3600, "often": 1, "never": 0}
    entries = "".join(
        f'[[cameras]]\ncamera_id = "{cid}"\nsource = "{clip}"\nsnapshot_interval = {interval}\n'
        for cid, interval in cameras.items()
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'loop = true\nworkers = 1\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n{entries}'
    )
    sub = subscriber_factory(broker.port, ["camapp/+/state", "camapp/+/snapshot"])
    proc = run_camapp(["run", "--config", str(config), "--duration", "4.5"], model_dir)
    assert proc.returncode == 0, proc.stderr[-500:]

    def topics(camera: str) -> list[str]:
        return [m.topic.rsplit("/", 1)[1] for m in sub.messages if f"/{camera}/" in m.topic]

    # The first state brings the first snapshot; a still scene brings no second state.
    assert topics("once") == ["state", "snapshot"]
    often = topics("often")
    assert often[0] == "state" and often.count("state") == 1 and often.count("snapshot") >= 2
    assert topics("never") == ["state"]
    for message in sub.on("camapp/once/snapshot") + sub.on("camapp/often/snapshot"):
        assert decode_jpeg(message.payload).shape == (480, 640, 3)  # http.view_width
    # Retained: what Home Assistant gets after a restart.
    later = Subscriber(broker.port, ["camapp/+/snapshot"])
    try:
        later.wait_for(lambda: len(later.messages) == 2)
        assert {m.topic for m in later.messages} == {
            "camapp/once/snapshot",
            "camapp/often/snapshot",
        }
        assert all(m.retain for m in later.messages)
    finally:
        later.close()
