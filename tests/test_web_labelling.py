"""The live view's labelling, from outside: the real `camapp run` with its page on and a
password, a real mosquitto, raw HTTP requests, and a real (tiny) training on frames of the
one-by-one clip that ends with the camera switched to the model it made."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from camapp.training import dataset_from_clip
from tests.conftest import SHARED_MEDIA
from tests.mqtt_helpers import Broker, Subscriber
from tests.web_helpers import Http, LiveCamapp, decode_jpeg, still_clip

PASSWORD = "label me"
RANGES = SHARED_MEDIA.parent / "datasets" / "one-by-one-person-occupancy.json"
ONE_BY_ONE = SHARED_MEDIA / "one-by-one-person-detection.mp4"


@contextmanager
def labelling_camapp(tmp: Path, model_dir: Path) -> Iterator[tuple[Any, ...]]:
    """camapp replaying a still photo, its dataset in a temporary folder not made yet."""
    broker = Broker(tmp).start()
    clip = still_clip(tmp / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp")
    dataset = tmp / "data" / "cam0"
    args = ["--source", str(clip), "--loop", "--mqtt-host", "127.0.0.1", "--mqtt-port",
            str(broker.port), "--snapshot-interval", "0", "--workers", "1",
            "--dataset", str(dataset)]  # fmt: skip
    app = LiveCamapp(args, model_dir, env={"CAMAPP_HTTP_PASSWORD": PASSWORD})
    yield app, dataset, broker
    code, err = app.stop()
    broker.stop()
    assert code == 0, err[-500:]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[tuple[Any, ...]]:
    with labelling_camapp(tmp_path_factory.mktemp("labelling"), model_dir) as app:
        yield app


def logged_in(live: tuple[Any, ...]) -> Http:
    http = Http(live[0].port)
    assert http.login(PASSWORD) == 200
    return http


@pytest.fixture
def client(live: tuple[Any, ...]) -> Iterator[Http]:
    """The tests but training share one camapp, and xdist may run them in any order: each
    leaves it as it found it, with no dataset."""
    http = logged_in(live)
    yield http
    shutil.rmtree(live[1], ignore_errors=True)
    until(lambda: labelling(http)["classes"] == [])


def until(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def labelling(http: Http) -> dict[str, Any]:
    status, _, body = http.request("GET", "/api/cameras/cam0/labelling")
    assert status == 200, body
    return json.loads(body)


class Viewer:
    """An open WebSocket that reads and drops what it is sent: someone watching."""

    def __init__(self, http: Http) -> None:
        self.sock = socket.create_connection(("127.0.0.1", http.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET /ws HTTP/1.1\r\nHost: {http.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                f"Cookie: {http.cookie}\r\n\r\n")  # fmt: skip
        self.sock.sendall(head.encode())
        assert self.sock.recv(12).endswith(b"101")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def test_labelling_routes_need_a_session_and_the_csrf_token(
    live: tuple[Any, ...], client: Http
) -> None:
    anonymous = Http(live[0].port)
    for path in ("/api/cameras/cam0/labelling", "/api/cameras/cam0/strip/1"):
        assert anonymous.request("GET", path)[0] == 401
    for path, body in (("strip", {"number": 1, "label": "a"}), ("train", {})):
        assert anonymous.post(f"/api/cameras/cam0/{path}", body)[0] == 401
        assert client.post(f"/api/cameras/cam0/{path}", body, X_CSRF_Token="")[0] == 403
        refused = client.post(f"/api/cameras/cam0/{path}", body, Origin="http://evil.example")
        assert refused[0] == 403
    assert client.post("/api/cameras/nope/train", {})[0] == 404
    for kind in ("report", "chart"):  # nothing trained yet
        assert anonymous.request("GET", f"/api/cameras/cam0/training/{kind}")[0] == 401
        assert client.request("GET", f"/api/cameras/cam0/training/{kind}")[0] == 404
    assert client.request("GET", "/api/cameras/cam0/training/..%2f..%2fetc%2fpasswd")[0] == 404
    assert client.request("GET", "/api/cameras/cam0/strip/..%2f..%2fetc%2fpasswd")[0] == 404
    assert labelling(client)["training"]["state"] == "idle"  # nothing started by the above


def test_a_class_button_saves_the_frame_and_a_bad_label_is_one_line(
    live: tuple[Any, ...], client: Http
) -> None:
    dataset = live[1]
    assert labelling(client)["classes"] == []  # no dataset yet, a model it did not train
    status, body = client.post("/api/cameras/cam0/set", {"capture": "../../etc"})
    assert status == 400 and "invalid label" in body["error"] and "\n" not in body["error"]
    assert client.post("/api/cameras/cam0/set", {"capture": "x" * 10_000})[0] == 400
    assert client.post("/api/cameras/cam0/set", {"capture": "hopper"})[0] == 200
    saved = until(lambda: list((dataset / "hopper").glob("*.jpg")))
    assert decode_jpeg(saved[0].read_bytes()).shape == (480, 640, 3)
    until(lambda: labelling(client)["classes"] == ["hopper"])


def test_unsure_frames_are_kept_while_watched_and_labelled_in_one_click(
    live: tuple[Any, ...], client: Http
) -> None:
    dataset = live[1]
    assert client.post("/api/cameras/cam0/set", {"threshold": 1.0})[0] == 200
    viewer = Viewer(client)
    try:
        strip = until(lambda: labelling(client)["strip"])
        status, head, jpeg = client.request("GET", f"/api/cameras/cam0/strip/{strip[0]['number']}")
        assert status == 200 and head["Content-Type"] == "image/jpeg"
        assert decode_jpeg(jpeg).shape[1] == 160
        assert all(d["score"] < 1.0 for d in strip) and len(labelling(client)["strip"]) <= 8
        bad = client.post("/api/cameras/cam0/strip", {"number": strip[0]["number"], "label": "/"})
        assert bad[0] == 400 and "invalid label" in bad[1]["error"]
        assert client.post("/api/cameras/cam0/strip", {"number": "1", "label": "a"})[0] == 400
        label = {"number": strip[0]["number"], "label": "unsure"}
        assert client.post("/api/cameras/cam0/strip", label)[0] == 200
        assert client.post("/api/cameras/cam0/strip", label)[0] == 400  # gone from the strip
    finally:
        viewer.close()
        assert client.post("/api/cameras/cam0/set", {"threshold": 0.5})[0] == 200
    [saved] = (dataset / "unsure").glob("*.jpg")
    sidecar = json.loads(saved.with_suffix(".json").read_text())
    assert sidecar["camera"] == "cam0" and sidecar["label"] == "unsure"
    assert sidecar["crop"] == "center" and "frame" in sidecar and "model" in sidecar
    until(lambda: not labelling(client)["strip"])  # nobody watches: nothing kept


def test_training_reports_progress_and_its_model_can_be_switched_to(
    tmp_path: Path, model_dir: Path
) -> None:
    """Training leaves a model and its report, which no request takes back: a camapp of its own."""
    with labelling_camapp(tmp_path, model_dir) as live:
        train_and_switch(live, logged_in(live))


def train_and_switch(live: tuple[Any, ...], client: Http) -> None:
    dataset = live[1]
    # One empty class is refused; then frames of the one-by-one clip in two classes.
    (dataset / "empty").mkdir(parents=True)
    status, _ = client.post("/api/cameras/cam0/train", {})
    assert status == 202
    failed = until(lambda: labelling(client)["training"]["state"] == "failed" and labelling(client))
    assert "at least 2 class folders" in failed["training"]["error"]
    counts = dataset_from_clip(ONE_BY_ONE, RANGES, dataset, 0, 700, 25)
    assert set(counts) == {"empty", "person"}
    assert client.post("/api/cameras/cam0/train", {})[0] == 202
    status, body = client.post("/api/cameras/cam0/train", {})
    assert status == 409 and "one at a time" in body["error"]
    states = set()

    def finished() -> dict[str, Any] | None:
        training = labelling(client)["training"]
        states.add((training["state"], training["stage"]))
        return training if training["state"] in ("done", "failed") else None

    training = until(finished, 120)
    assert training["state"] == "done", training
    assert ("running", "embed") in states or ("running", "fit") in states, states
    model = Path(training["model"])
    assert model.parent == dataset.parent and model.name.startswith("cam0-")
    check_report(client, training, model)
    switch_clears_the_strip(live, client, model)
    assert labelling(client)["classes"] == ["empty", "person"]  # the trained model's


def check_report(client: Http, training: dict[str, Any], model: Path) -> None:
    """The page shows the accuracy and links the report (and chart) of the model it made."""
    assert training["accuracy_on"] in ("validation", "training")
    assert 0.5 <= training["accuracy"] <= 1.0, training
    status, head, body = client.request("GET", "/api/cameras/cam0/training/report")
    assert status == 200 and head["Content-Type"].startswith("text/plain")
    assert body == Path(training["report"]).read_bytes() and model.name.encode() in body
    status, head, body = client.request("GET", "/api/cameras/cam0/training/chart")
    assert status == 200 and head["Content-Type"] == "image/png"
    assert body[:8] == b"\x89PNG\r\n\x1a\n"


def switch_clears_the_strip(live: tuple[Any, ...], client: Http, model: Path) -> None:
    """Frames named by ImageNet leave the strip once the camera classifies with its model."""
    assert client.post("/api/cameras/cam0/set", {"threshold": 1.0})[0] == 200
    viewer = Viewer(client)
    sub = Subscriber(live[2].port, ["camapp/cam0/classification"])
    try:
        until(lambda: labelling(client)["strip"])
        status, body = client.post("/api/cameras/cam0/set", {"model": str(model)})
        assert status == 200 and body["config"]["model"] == model.stem

        def mine() -> int:
            return sum(json.loads(m.payload)["model"] == model.stem for m in sub.messages)

        sub.wait_for(lambda: mine() >= 2)  # the frame before the second went to every sink
        labels = {d["label"] for d in labelling(client)["strip"]}
        assert labels <= {"empty", "person"}, labels
    finally:
        sub.close()
        viewer.close()
        assert client.post("/api/cameras/cam0/set", {"threshold": 0.5})[0] == 200
