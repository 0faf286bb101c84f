"""Delivery across broker outages, the outbound buffer's bound, several cameras per broker.

The broker is a real mosquitto with persistence, stopped and started on the same port; the
subscriber is a persistent QoS 1 session (fixed client id, clean_session=False), so what
the broker accepted before a restart still reaches it afterwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from camapp.config.schema import MqttSettings
from camapp.publish.mqtt import MqttPublisher
from tests.conftest import start_camapp
from tests.mqtt_helpers import Broker, Proxy

TOPIC = "camapp/porch/classification"


def frames(sub, topic: str = TOPIC) -> list[int]:
    return [json.loads(m.payload)["frame"] for m in sub.on(topic)]


def without_redeliveries(messages: list) -> tuple[list[int], int]:
    """Frame numbers received, less the broker's redeliveries, and how many those were.

    QoS 1 from the broker to the subscriber is at-least-once too: a message the broker sent
    just before it stopped, whose acknowledgement it had not read, comes again after the
    restart with the DUP flag and the same message id. That copy is the broker's doing, so
    it is set aside (and counted); any other repeat would be camapp's and fails the test.
    """
    seen: set[tuple[int, bytes]] = set()
    kept, redelivered = [], 0
    for m in messages:
        if m.dup and (m.mid, m.payload) in seen:
            redelivered += 1
            continue
        seen.add((m.mid, m.payload))
        kept.append(json.loads(m.payload)["frame"])
    return kept, redelivered


def catch_up(sub, since: float) -> tuple[float, float, int]:
    """After the outage: seconds until the first message arrived, how many arrived late
    (0.5 s or more after their capture: the backlog), and over how many seconds."""
    after = [
        (t, json.loads(m.payload)["ts"])
        for m, t in zip(sub.messages, sub.arrivals, strict=True)
        if t >= since and m.topic == TOPIC and not m.dup  # not the broker's redeliveries
    ]
    late = [t for t, ts in after if t - ts >= 0.5]
    return after[0][0] - since, (late[-1] - late[0]) if late else 0.0, len(late)


def persistent_session(broker: Broker, subscriber_factory, topics: list[str]):
    """A QoS 1 subscriber whose session (and queued messages) survives broker restarts."""
    return subscriber_factory(broker.port, topics, client_id="recorder", clean=False, qos=1)


def test_broker_restart_mid_replay_loses_nothing_and_keeps_order(
    tmp_path: Path, subscriber_factory, model_dir: Path, photos_clip, capsys
) -> None:
    video, _ = photos_clip
    broker = Broker(tmp_path, persistent=True).start()
    sub = persistent_session(broker, subscriber_factory, [TOPIC])
    try:
        total = 80  # 8 s at the clip's 10 fps: the replay outlasts the outage
        proc = start_camapp(
            [
                "run",
                *("--source", str(video), "--loop", "--no-drop", "--max-frames", str(total)),
                *("--camera-id", "porch", "--mqtt-port", str(broker.port)),
            ],
            model_dir,
        )
        sub.wait_for(lambda: len(frames(sub)) >= 15)
        broker.stop()
        stopped = time.monotonic()
        received_before = len(frames(sub))
        time.sleep(4)
        broker.start()
        restarted, restarted_wall = time.monotonic(), time.time()
        sub.wait_for(lambda: frames(sub)[-1:] == [total - 1], timeout=30)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        got, redelivered = without_redeliveries(sub.on(TOPIC))
        assert got == list(range(total)), got  # every frame, in order, no gap, no duplicate
        assert "lost broker" in err and "Traceback" not in err
    finally:
        sub.close()  # before the broker goes: no reconnect loop to wait for
        broker.stop()
    back, caught_up, backlog = catch_up(sub, restarted_wall)
    with capsys.disabled():
        print(
            f"\n[delivery across a broker restart] frames sent {total}, received {len(got)}"
            f" ({received_before} before the stop), outage {restarted - stopped:.1f} s;"
            f" first message {back:.1f} s after the restart, backlog of {backlog} delivered"
            f" {caught_up:.2f} s later; {redelivered} redelivered by the broker (QoS 1, DUP)"
        )


def test_network_drop_with_messages_in_flight_loses_and_repeats_nothing(
    broker, subscriber_factory, model_dir: Path, photos_clip, capsys
) -> None:
    """The link dies while messages are on the wire, unacknowledged: they are sent again
    after the reconnect, before anything newer, and the broker sees each exactly once."""
    video, _ = photos_clip
    sub = subscriber_factory(broker.port, [TOPIC])
    proxy = Proxy(broker.port)
    total = 60
    proc = start_camapp(
        [
            "run",
            *("--source", str(video), "--no-drop", "--max-frames", str(total)),
            *("--camera-id", "porch", "--mqtt-port", str(proxy.port)),
        ],
        model_dir,
    )
    try:
        sub.wait_for(lambda: len(frames(sub)) >= 15)
        proxy.stall()
        time.sleep(1.5)
        in_flight = len(frames(sub))
        proxy.cut()
        cut = time.monotonic()
        time.sleep(1)
        proxy.restore()
        restored, restored_wall = time.monotonic(), time.time()
        sub.wait_for(lambda: len(frames(sub)) >= total, timeout=30)
        _, err = proc.communicate(timeout=30)
    finally:
        proxy.close()
    assert proc.returncode == 0, err
    assert proxy.swallowed > 0  # messages were on the wire when the link died
    assert frames(sub) == list(range(total))  # strictly: nothing lost, repeated or reordered
    back, caught_up, backlog = catch_up(sub, restored_wall)
    with capsys.disabled():
        print(
            f"\n[delivery across a network drop] frames sent {total}, received {len(frames(sub))},"
            f" {proxy.swallowed} bytes lost on the wire after frame {in_flight - 1},"
            f" link down {restored - cut:.1f} s; first message {back:.1f} s after, backlog of"
            f" {backlog} delivered {caught_up:.2f} s later"
        )


def test_full_buffer_sheds_oldest_classifications_and_keeps_state(
    tmp_path: Path, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, meta = photos_clip
    broker = Broker(tmp_path, persistent=True).start()
    topics = [TOPIC, "camapp/porch/state", "camapp/porch/availability"]
    sub = persistent_session(broker, subscriber_factory, topics)
    broker.stop()  # camapp starts with the broker away
    total, buffer = 120, 20
    proc = start_camapp(
        [
            "run",
            *("--source", str(video), "--loop", "--no-realtime", "--no-drop"),
            *("--max-frames", str(total), "--threshold", "0.3", "--state-frames", "3"),
            *("--camera-id", "porch", "--mqtt-port", str(broker.port)),
            *("--mqtt-buffer-messages", str(buffer)),
        ],
        model_dir,
    )
    try:
        # camapp retries after 1 s, then 3 s: come back in between, after the replay is done.
        while "unreachable" not in proc.stderr.readline():
            assert proc.poll() is None, proc.stderr.read()
        time.sleep(1.5)
        broker.start()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        sub.wait_for(lambda: [m.payload for m in sub.on(topics[2])][-1:] == [b"offline"])
    finally:
        sub.close()
        broker.stop()
    dropped = int(err.split(" MQTT messages dropped")[0].rsplit(" ", 1)[-1])
    got = frames(sub)
    # Exactly the oldest classifications went, as many as counted; the rest in order.
    assert dropped > 0 and got == list(range(dropped, total)), (dropped, got)
    # Every state change survived: one per scene the replay went through (states never drop).
    states = [json.loads(m.payload)["label"] for m in sub.on(topics[1])]
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    scenes = [seg["labels"][0] for seg in meta["segments"]]
    per_scene = meta["segments"][0]["last"] + 1
    expected = [scenes[k % len(scenes)] for k in range((total - 3) // per_scene + 1)]
    assert [c if c in scenes else scenes[1] for c in changes] == expected, states
    assert [m.payload for m in sub.on(topics[2])] == [b"online", b"offline"]


def test_three_cameras_share_one_broker(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    sub = subscriber_factory(broker.port, ["camapp/#", "homeassistant/#"])
    cameras = ["hall", "porch", "garage"]
    count = 30
    procs = [
        start_camapp(
            [
                "run",
                *("--source", str(video), "--no-realtime", "--no-drop", "--workers", "1"),
                *("--max-frames", str(count), "--camera-id", cam, "--mqtt-port", str(broker.port)),
                *(["--no-ha-discovery"] if cam == "garage" else []),
            ],
            model_dir,
        )
        for cam in cameras
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    for cam in cameras:
        topic = f"camapp/{cam}/classification"
        sub.wait_for(lambda t=topic: len(sub.on(t)) == count)
        assert {json.loads(m.payload)["camera_id"] for m in sub.on(topic)} == {cam}
        assert frames(sub, topic) == list(range(count))
        sub.wait_for(lambda c=cam: len(sub.on(f"camapp/{c}/availability")) == 2)
        assert [m.payload for m in sub.on(f"camapp/{cam}/availability")] == [b"online", b"offline"]
        configs = [m for m in sub.messages if f"/camapp-{cam}/" in m.topic]
        devices = {json.loads(m.payload)["device"]["identifiers"][0] for m in configs}
        assert devices == (set() if cam == "garage" else {f"camapp-{cam}"})
    # Nothing outside the three cameras' own topics.
    assert {m.topic.split("/")[1] for m in sub.messages if m.topic.startswith("camapp/")} == set(
        cameras
    )
    # Each camera has its own client id: none took another's connection over.
    assert "already connected" not in broker.log.read_text()


def test_qos0_messages_leave_the_outbox_once_written(tmp_path: Path, subscriber_factory) -> None:
    """At QoS 0 paho's on_publish (after the write) releases each message: all arrive, in
    order, and close() finds nothing undelivered (many times the window)."""
    broker = Broker(tmp_path).start()
    sub = subscriber_factory(broker.port, ["camapp/q0/classification"], qos=0)
    publisher = MqttPublisher(MqttSettings(port=broker.port, qos=0), "camapp-q0")
    try:
        # Queued before the connection is up, then more than it: the sender drains the first
        # lot a window at a time, woken by each write, and the rest follow in order.
        for n in range(150):
            publisher.publish("camapp/q0/classification", json.dumps({"frame": n}))
        publisher.start()
        for n in range(150, 300):
            publisher.publish("camapp/q0/classification", json.dumps({"frame": n}))
        assert publisher.close() == 0
        sub.wait_for(lambda: len(sub.messages) >= 300)
        assert [json.loads(m.payload)["frame"] for m in sub.messages] == list(range(300))
    finally:
        broker.stop()
