"""`camapp run` end to end: real clip, real model, real mosquitto, real subscriber."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_MEDIA, run_camapp, start_camapp

FIELDS = {
    "camera_id",
    "frame",
    "ts",
    "label",
    "class_id",
    "score",
    "top_k",
    "inference_ms",
    "latency_ms",
    "model",
}


def test_replay_publishes_every_frame_in_order(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, meta = photos_clip
    sub = subscriber_factory(broker.port, ["camapp/#"])
    started = time.time()
    proc = run_camapp(
        [
            "run",
            "--source",
            str(video),
            "--no-drop",
            "--no-realtime",
            "--camera-id",
            "porch",
            "--mqtt-port",
            str(broker.port),
        ],
        model_dir,
    )
    assert proc.returncode == 0, proc.stderr
    topic = "camapp/porch/classification"
    sub.wait_for(lambda: len(sub.on(topic)) == meta["frames"])
    sub.wait_for(
        lambda: [m.payload for m in sub.on("camapp/porch/availability")][-1:] == [b"offline"]
    )
    messages = [json.loads(m.payload) for m in sub.on(topic)]
    assert [m["frame"] for m in messages] == list(range(meta["frames"]))
    for m in messages:
        assert set(m) >= FIELDS
        assert m["camera_id"] == "porch" and m["model"] == "mobilenet_v2_int8"
        assert started - 1 < m["ts"] < time.time()
        assert m["top_k"][0] == {k: m[k] for k in ("label", "class_id", "score")}
        assert 0 < m["inference_ms"] <= m["latency_ms"]
    for segment in meta["segments"]:
        labels = [messages[i]["label"] for i in range(segment["first"], segment["last"] + 1)]
        assert all(label in segment["labels"] for label in labels), (segment["scene"], labels)
    availability = [m.payload for m in sub.on("camapp/porch/availability")]
    assert availability == [b"online", b"offline"]
    assert all(m.retain == 0 for m in sub.on(topic))


def test_availability_is_retained_for_late_subscribers(
    broker, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    proc = run_camapp(
        [
            "run",
            "--source",
            str(video),
            "--no-realtime",
            "--max-frames",
            "5",
            "--mqtt-port",
            str(broker.port),
        ],
        model_dir,
    )
    assert proc.returncode == 0, proc.stderr
    late = subscriber_factory(broker.port, ["camapp/cam0/availability"])
    late.wait_for(lambda: len(late.messages) == 1)
    assert late.messages[0].payload == b"offline" and late.messages[0].retain


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_finishes_in_flight_frames_and_says_offline(
    broker, subscriber_factory, model_dir: Path, signum: int
) -> None:
    """SIGHUP (a closed terminal, some supervisors) ends the run as SIGTERM does: drained,
    `offline`, exit 0; its default would kill camapp with the queued frames."""
    sub = subscriber_factory(broker.port, ["camapp/#"])
    clip = str(SHARED_MEDIA / "car-detection.mp4")
    proc = start_camapp(
        ["run", "--source", clip, "--loop", "--mqtt-port", str(broker.port)], model_dir
    )
    sub.wait_for(lambda: len(sub.on("camapp/cam0/classification")) >= 5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and f"{signal.Signals(signum).name}: finishing" in err
    sub.wait_for(
        lambda: [m.payload for m in sub.on("camapp/cam0/availability")][-1:] == [b"offline"]
    )
    frames = [json.loads(m.payload)["frame"] for m in sub.on("camapp/cam0/classification")]
    assert frames == sorted(frames)
    classified = int(err.split(" classified")[0].rsplit(" ", 1)[-1])
    assert classified == len(frames)


def test_unreachable_broker_never_stops_capture(model_dir: Path, photos_clip) -> None:
    video, meta = photos_clip
    from tests.mqtt_helpers import free_port

    proc = run_camapp(
        [
            "run",
            "--source",
            str(video),
            "--no-drop",
            "--no-realtime",
            "--print",
            "--mqtt-port",
            str(free_port()),
        ],
        model_dir,
    )
    # Every frame is still classified; the undelivered messages are reported, not lost silently.
    assert len(proc.stdout.splitlines()) == meta["frames"]
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("camapp: error: ") and "not delivered" in last
    assert "unreachable" in proc.stderr


def test_a_corrupt_stretch_costs_its_frames_not_the_rest_of_the_file(
    broker, subscriber_factory, model_dir: Path, tmp_path: Path
) -> None:
    from tests.test_sources import corrupt_copy

    sub = subscriber_factory(broker.port, ["camapp/lot/classification"])
    args = ["run", "--source", str(corrupt_copy(tmp_path)), "--camera-id", "lot",
            "--no-realtime", "--no-drop", "--mqtt-port", str(broker.port)]  # fmt: skip
    proc = run_camapp(args, model_dir)
    assert proc.returncode == 0, proc.stderr
    sub.wait_for(lambda: len(sub.messages) == 376)
    assert "1 undecodable" in proc.stderr and "1 frames would not decode" in proc.stderr


@pytest.mark.parametrize(
    "signums", [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)]
)
def test_a_signal_during_start_up_stops_before_capture_with_exit_0(
    broker, model_dir: Path, signums: tuple[int, ...]
) -> None:
    """A stop while a stream is still being opened (a server that accepts and never answers:
    5 s of start-up) is a stop like any other: one line, exit 0, once the open returns,
    rather than 'cannot open' (exit 1). SIGTERM used to kill camapp without a word (exit -15),
    SIGINT to end it with `error: interrupted` (exit 1). Signals that come together are
    handled one after the other, lowest number first: the later ones must not interrupt the
    way out of the first (which ended in `lost sys.stderr`, exit 1)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live"
        proc = start_camapp(["run", "--source", url, "--mqtt-port", str(broker.port)], model_dir)
        silent.settimeout(30)
        conn, _ = silent.accept()  # camapp is opening the stream, its handlers installed
        with conn:
            for signum in signums:
                proc.send_signal(signum)
            _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "error" not in err
    assert err.strip().splitlines()[-1] == (
        f"camapp: INFO: {signal.Signals(min(signums)).name} during start-up: stopped before capture"
    )
