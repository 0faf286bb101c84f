"""One process, several cameras: each keeps its own topics, frame order and availability,
on one MQTT connection, sharing one worker pool fairly."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from camapp.capture import Frame
from tests.conftest import SHARED_MEDIA, lone_queue, run_camapp


def two_camera_config(tmp_path: Path, photos: Path, port: int, extra: str = "") -> Path:
    config = tmp_path / "two.toml"
    config.write_text(
        f"""
realtime = false
drop = false
workers = 2
{extra}
[mqtt]
host = "127.0.0.1"
port = {port}
[[cameras]]
camera_id = "porch"
source = "{photos}"
[[cameras]]
camera_id = "yard"
source = "{SHARED_MEDIA / "car-detection.mp4"}"
max_frames = 90
stride = 2
"""
    )
    return config


def test_two_cameras_one_process_each_frame_on_its_own_topic_in_order(
    broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, meta = photos_clip
    sub = subscriber_factory(broker.port, ["camapp/#", "homeassistant/#"])
    proc = run_camapp(["run", "--config", str(two_camera_config(tmp_path, video, broker.port))],
                      model_dir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    porch, yard = "camapp/porch/classification", "camapp/yard/classification"
    sub.wait_for(lambda: len(sub.on(porch)) == meta["frames"] and len(sub.on(yard)) == 45)
    frames = {t: [json.loads(m.payload)["frame"] for m in sub.on(t)] for t in (porch, yard)}
    assert frames[porch] == list(range(meta["frames"]))
    assert frames[yard] == list(range(0, 90, 2))  # its own stride, its own frame numbers
    assert {json.loads(m.payload)["camera_id"] for m in sub.on(yard)} == {"yard"}
    # One connection (one client id, one last will on the process's topic), and each camera
    # says for itself that it has stopped.
    assert broker.log.read_text().count("New client connected") == 2  # camapp + subscriber
    for topic in ("camapp/porch/availability", "camapp/yard/availability",
                  "camapp/camapp-porch/availability"):  # fmt: skip
        sub.wait_for(lambda t=topic: [m.payload for m in sub.on(t)][-1:] == [b"offline"])
    # Home Assistant sees each camera as a device, available while both topics say online.
    config = json.loads(sub.on("homeassistant/sensor/camapp-yard/label/config")[-1].payload)
    assert config["availability_mode"] == "all"
    assert [a["topic"] for a in config["availability"]] == [
        "camapp/camapp-porch/availability",
        "camapp/yard/availability",
    ]
    assert "camera porch: 60 frames captured" in proc.stderr
    assert "camera yard: 90 frames captured, 45 classified" in proc.stderr


def test_a_camera_entry_is_checked_where_it_is(model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    first = '[[cameras]]\ncamera_id = "a"\nsource = "x.mp4"\n'
    config.write_text(first + '[[cameras]]\ncamera_id = "b"\nsource = "y.mp4"\ncpu_budget = 500\n')
    proc = run_camapp(["run", "--config", str(config)], model_dir)
    assert proc.returncode == 2
    assert "c.toml: cameras[1].cpu_budget: must be between 1 and 100 (got 500)" in proc.stderr
    config.write_text(first + '[[cameras]]\ncamera_id = "a"\nsource = "y.mp4"\n')
    proc = run_camapp(["run", "--config", str(config)], model_dir)
    assert proc.returncode == 2 and "camera_id must differ" in proc.stderr
    config.write_text('source = "x.mp4"\n[[cameras]]\ncamera_id = "a"\nsource = "y.mp4"\n')
    proc = run_camapp(["run", "--config", str(config)], model_dir)
    assert proc.returncode == 2 and "set it in each [[cameras]] entry" in proc.stderr
    config.write_text(first + "[cameras.mqtt]\nport = 1\n")
    proc = run_camapp(["run", "--config", str(config)], model_dir)
    assert proc.returncode == 2 and "unknown setting 'cameras[0].mqtt'" in proc.stderr


def test_workers_serve_the_cameras_round_robin() -> None:
    """A replay that always has a frame queued cannot starve another camera: with both
    queues full, frames are handed out alternately."""
    hub, busy = lone_queue(8, drop_oldest=False)
    live = hub.queue("live", 8, drop_oldest=True)
    busy.owner = "replay"
    image = np.zeros((2, 2, 3), np.uint8)
    for n in range(6):
        busy.put(Frame(n, 0.0, image, 0.0))
    for n in range(3):
        live.put(Frame(n, 0.0, image, 0.0))
    order = [hub.get(0)[0].owner for _ in range(9)]
    assert order == ["replay", "live"] * 3 + ["replay"] * 3
    busy.close()
    live.close()
    assert hub.get(1) is None  # every queue closed and drained: the workers leave


def test_a_closed_camera_does_not_end_the_pool_for_the_others() -> None:
    hub, first = lone_queue(2, drop_oldest=False)
    second = hub.queue("second", 2, drop_oldest=False)
    first.close()  # a replay that reached its end
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(hub.get(0)))
    waiter.start()
    second.put(Frame(0, 0.0, np.zeros((2, 2, 3), np.uint8), 0.0))
    waiter.join(5)
    assert got and got[0] is not None and got[0][0] is second
