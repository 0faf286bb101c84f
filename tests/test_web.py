"""The live view's server, from outside: the real `camapp run` with its page on, a real
mosquitto, and raw HTTP requests (sent exactly as written, so paths are not tidied up).

Security: the password, sessions, CSRF tokens and same-origin checks on every state-changing
request, request size limits, nothing served but the page's own files, no path traversal,
the Host check of a loopback server, and the configuration errors that keep the page from
being exposed without a password.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pytest

from camapp.bench.broker import free_port
from camapp.config.load import build
from camapp.errors import ConfigError
from camapp.logs import BURST
from camapp.publish.commands import COMMAND_BURST, COMMANDS_PER_S
from camapp.web.auth import (
    LOGIN_PER_CLIENT,
    LOGIN_TOTAL,
    LOGIN_WAITING,
    LoginLimiter,
    Sessions,
    hash_password,
    verify_password,
)
from camapp.web.door import HEADER_S, MAX_CONNECTIONS
from tests.conftest import SHARED_MEDIA, run_camapp
from tests.mqtt_helpers import Broker, Subscriber
from tests.web_helpers import Http, LiveCamapp, still_clip

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("broker")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return still_clip(
        tmp_path_factory.mktemp("clip") / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp"
    )


@pytest.fixture(scope="module")
def guarded(module_broker: Broker, clip: Path, model_dir: Path) -> Iterator[LiveCamapp]:
    """camapp with a password (from the environment), replaying a still clip forever."""
    args = ["--source", str(clip), "--loop", "--mqtt-host", "127.0.0.1", "--mqtt-port",
            str(module_broker.port), "--snapshot-interval", "0", "--workers", "1"]  # fmt: skip
    live = LiveCamapp(args, model_dir, env={"CAMAPP_HTTP_PASSWORD": PASSWORD})
    yield live
    live.stop()


def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def client(guarded: LiveCamapp) -> Http:
    http = Http(guarded.port)
    assert http.login(PASSWORD) == 200
    return http


def test_a_wrong_password_is_refused_and_the_right_one_opens_a_session(
    guarded: LiveCamapp,
) -> None:
    http = Http(guarded.port)
    status, head, _ = http.request("GET", "/")
    assert status == 303 and head["Location"] == "/login"
    assert http.request("GET", "/api/session")[0] == 401
    assert http.request("GET", "/app.js")[0] == 401
    assert http.login("wrong") == 401
    assert http.cookie is None
    http.cookie = f"camapp_session_{guarded.port}=made-up"
    assert http.request("GET", "/api/session")[0] == 401
    assert http.login(PASSWORD) == 200
    status, _, body = http.request("GET", "/api/session")
    assert status == 200 and json.loads(body)["cameras"][0]["id"] == "cam0"
    assert http.request("GET", "/")[0] == 200


def test_state_changes_need_the_csrf_token_and_this_origin(
    client: Http, module_broker: Broker
) -> None:
    sub = Subscriber(module_broker.port, ["camapp/cam0/config"])
    try:
        sub.wait_for(lambda: bool(sub.messages))  # the retained settings in force
        path = "/api/cameras/cam0/set"
        assert client.post(path, {"stride": 3}, X_CSRF_Token="")[0] == 403
        assert client.post(path, {"stride": 3}, X_CSRF_Token="0" * 64)[0] == 403
        assert client.post(path, {"stride": 3}, Origin="http://evil.example")[0] == 403
        # A form another site could send: no custom header, not JSON.
        status, _, _ = client.request(
            "POST", path, "stride=3", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 415
        assert client.post("/api/logout", {}, X_CSRF_Token="")[0] == 403
        assert all(json.loads(m.payload)["stride"] == 1 for m in sub.on("camapp/cam0/config"))
        status, body = client.post(path, {"stride": 3})
        assert status == 200 and body["config"]["stride"] == 3
        sub.wait_for(lambda: any(json.loads(m.payload)["stride"] == 3 for m in sub.messages))
        assert client.post(path, {"stride": 1})[0] == 200
    finally:
        sub.close()


def test_a_control_is_validated_as_the_set_topic_validates_it(
    client: Http, module_broker: Broker
) -> None:
    sub = Subscriber(module_broker.port, ["camapp/cam0/error"])
    try:
        bad = {"threshold": 2, "stride": 2}
        status, body = client.post("/api/cameras/cam0/set", bad)
        sub.publish("camapp/cam0/set", json.dumps(bad))
        sub.wait_for(lambda: bool(sub.messages))
        assert status == 400
        assert body["error"] == json.loads(sub.messages[0].payload)["error"]
        assert "threshold" in body["error"]
        assert client.post("/api/cameras/nope/set", {"stride": 2})[0] == 404
        assert client.post("/api/cameras/cam0/set", ["stride", 2])[0] == 400
    finally:
        sub.close()


def test_a_model_name_no_file_can_have_is_a_bad_request(client: Http, model_dir: Path) -> None:
    """Too long for a file name, a NUL, a lone surrogate: 400 with the `set` topic's reason,
    not a server error."""
    for name in (str(model_dir / ("a" * 5000)), "a\u0000b", "\ud800"):
        status, body = client.post("/api/cameras/cam0/set", {"model": name})
        assert status == 400 and body["error"].startswith("model: "), (name[-9:], status, body)


def test_a_password_that_is_no_text_is_a_bad_request(guarded: LiveCamapp) -> None:
    """JSON can escape a lone surrogate, which no password (UTF-8) can hold: 400, not a
    server error while the password is checked."""
    http = Http(guarded.port)
    assert http.login("\ud800") == 400
    assert http.login("x\udfff") == 400
    assert http.login(PASSWORD) == 200


def test_logging_out_ends_the_session(guarded: LiveCamapp) -> None:
    http = Http(guarded.port)
    assert http.login(PASSWORD) == 200
    assert http.post("/api/logout", {})[0] == 200
    assert http.request("GET", "/api/session")[0] == 401
    assert http.post("/api/cameras/cam0/set", {"stride": 2})[0] == 401


def test_request_bodies_are_limited(client: Http) -> None:
    huge = json.dumps({"stride": 2, "pad": "x" * 100_000})
    status, _, _ = client.request(
        "POST",
        "/api/cameras/cam0/set",
        huge,
        {"Content-Type": "application/json", "X-CSRF-Token": client.csrf or ""},
    )
    assert status == 413
    status, _, _ = client.request("POST", "/api/login", huge, {"Content-Type": "application/json"})
    assert status == 413


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/app.js/../../server.py",
        "/static/app.js",
        "/static/../server.py",
        "/index.html",
        "/login.html",
        "/server.py",
        "/camapp/web/server.py",
        "/web/static/index.html",
        "//etc/passwd",
        "/favicon.ico",
    ],
)
def test_nothing_is_served_but_the_pages_own_files(client: Http, path: str) -> None:
    status, _, body = client.request("GET", path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"import" not in body and b"<html" not in body


def test_the_served_files_are_the_packaged_ones(client: Http) -> None:
    static = resources.files("camapp.web") / "static"
    for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css"),
                       ("/login.js", "login.js")):  # fmt: skip
        status, head, body = client.request("GET", path)
        assert status == 200 and body == (static / name).read_bytes()
        assert "default-src 'self'" in head["Content-Security-Policy"]
        assert head["X-Content-Type-Options"] == "nosniff"


def _handshake(http: Http, origin: str) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": key, "Origin": origin}  # fmt: skip
    return http.request("GET", "/ws", None, headers)[0]


def test_the_websocket_needs_a_session_and_this_origin(client: Http, guarded: LiveCamapp) -> None:
    assert _handshake(client, "http://evil.example") == 403
    assert _handshake(Http(guarded.port), f"http://127.0.0.1:{guarded.port}") == 401
    assert _handshake(client, f"http://127.0.0.1:{guarded.port}") == 101


def test_a_loopback_server_without_password_checks_the_host(
    clip: Path, model_dir: Path, module_broker: Broker
) -> None:
    args = ["--source", str(clip), "--loop", "--mqtt-port", str(module_broker.port),
            "--mqtt-host", "127.0.0.1", "--workers", "1", "--snapshot-interval", "0"]  # fmt: skip
    live = LiveCamapp(args, model_dir)
    try:
        http = Http(live.port)
        status, head, _ = http.request("GET", "/")
        assert status == 200 and "HttpOnly" in head["Set-Cookie"]  # no login on loopback
        http.cookie = head["Set-Cookie"].split(";", 1)[0]
        assert http.request("GET", "/api/session")[0] == 200
        # DNS rebinding: another name pointed at 127.0.0.1 must not reach the page.
        rebound = Http(live.port, host=f"evil.example:{live.port}")
        rebound.cookie = http.cookie
        assert rebound.request("GET", "/")[0] == 421
        assert rebound.request("GET", "/api/session")[0] == 421
    finally:
        assert live.stop()[0] == 0


def test_settings_past_the_rate_are_refused(
    clip: Path, model_dir: Path, module_broker: Broker
) -> None:
    """The page's `/set` takes what the `set` topic takes (COMMAND_BURST at once, then
    COMMANDS_PER_S a second; a camapp of its own, whose budget no other test spends): each
    applied command publishes a retained `config`, and a flood of them would crowd the
    classifications out of the outbox."""
    args = ["--source", str(clip), "--loop", "--mqtt-host", "127.0.0.1", "--mqtt-port",
            str(module_broker.port), "--snapshot-interval", "0", "--workers", "1"]  # fmt: skip
    live = LiveCamapp(args, model_dir, env={"CAMAPP_HTTP_PASSWORD": PASSWORD})
    try:
        http = Http(live.port)
        assert http.login(PASSWORD) == 200
        with ThreadPoolExecutor(8) as pool:  # 8 at a time: far faster than the rate refills
            answers = list(pool.map(lambda _: http.post("/api/cameras/cam0/set", {}), range(300)))
    finally:
        assert live.stop()[0] == 0
    statuses = [status for status, _ in answers]
    assert set(statuses) == {200, 429} and statuses.count(200) >= COMMAND_BURST, statuses
    refused = [body["error"] for status, body in answers if status == 429]
    assert refused[0] == f"more than {COMMANDS_PER_S} commands a second: refused unread"


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "192.0.2.7:8080", "camera.lan:8080", "[::]:8080"])
def test_other_addresses_than_loopback_need_a_password(
    bind: str, clip: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMAPP_HTTP_PASSWORD", raising=False)
    proc = run_camapp(["run", "--source", str(clip), "--http-bind", bind], model_dir)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("camapp: error: http.bind:") and "password" in line


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"bind": "127.0.0.1:99999"}, "port from 1 to 65535"),
        ({"bind": "localhost"}, "HOST:PORT"),
        ({"bind": "127.0.0.1:80\n"}, "HOST:PORT"),
        ({"password_hash": "plain-text-password"}, "camapp web password"),
        ({"password_hash": "scrypt$1048576$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44}, "64 MiB"),
        ({"view_fps": 0}, "between 0.2 and 30"),
    ],
)
def test_bad_http_settings_are_config_errors(values: dict, why: str) -> None:
    with pytest.raises(ConfigError) as error:
        build({"http": values}, {}, "c.toml")
    message = str(error.value)
    assert message.startswith("c.toml: http.") and why in message and len(message) < 300


def test_a_taken_port_is_a_config_error(clip: Path, model_dir: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        proc = run_camapp(["run", "--source", str(clip), "--http-bind", str(port)], model_dir)
    assert proc.returncode == 2
    assert "cannot listen" in proc.stderr.strip().splitlines()[-1]


def test_password_hashes_and_the_web_password_command(model_dir: Path) -> None:
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored) and not verify_password(PASSWORD + " ", stored)
    assert stored != hash_password(PASSWORD)  # salted
    proc = run_camapp(["web", "password"], model_dir, input=PASSWORD + "\n")
    assert proc.returncode == 0
    line = proc.stdout.strip()
    assert line.startswith('password_hash = "scrypt$')
    printed = line.split('"')[1]
    assert verify_password(PASSWORD, printed)
    build({"http": {"bind": "0.0.0.0:8080", "password_hash": printed}}, {}, "c.toml")


def test_web_password_reads_stdin_bounded(model_dir: Path, tmp_path: Path) -> None:
    """`< /dev/zero` (no end of line) took all memory, non-UTF-8 bytes were an internal
    UnicodeEncodeError: one line each, exit 2."""
    latin1 = tmp_path / "latin1"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    wide = tmp_path / "wide"  # 4 bytes a character, one too many: too long, not "not UTF-8"
    wide.write_text("\U0001f600" * 1025 + "\n")
    for source, why in (
        ("/dev/zero", "1 to 1024 characters"),
        (latin1, "not UTF-8"),
        (wide, "1 to 1024 characters"),
    ):
        with open(source, "rb") as stdin:
            proc = run_camapp(["web", "password"], model_dir, timeout=30, stdin=stdin)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("camapp: error: ") and why in line, proc.stderr


def test_concurrent_wrong_logins_cannot_pass_the_limit(guarded: LiveCamapp) -> None:
    """300 wrong passwords sent at once from one address: at most LOGIN_PER_CLIENT are
    checked, the rest refused before any check; the owner elsewhere still logs in."""
    guesser = Http(guarded.port, source="127.0.0.9")
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda n: guesser.login(f"guess {n}"), range(300)))
    checked = statuses.count(401)
    assert 1 <= checked <= LOGIN_PER_CLIENT and statuses.count(429) == 300 - checked, statuses
    # One at a time, the rest of this address's minute: then nothing more is checked.
    more = [guesser.login("again") for _ in range(LOGIN_PER_CLIENT + 1 - checked)]
    assert more == [401] * (LOGIN_PER_CLIENT - checked) + [429]
    assert guesser.login(PASSWORD) == 429  # this address waits a minute, right or wrong
    owner = Http(guarded.port, source="127.0.0.10")
    assert owner.login(PASSWORD) == 200
    assert owner.request("GET", "/api/session")[0] == 200
    status, _, body = Http(guarded.port, source="127.0.0.9").request(
        "POST", "/api/login", json.dumps({"password": "guess"}),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 429 and "this address" in json.loads(body)["error"]


def test_idle_connections_cannot_take_the_page_down(
    clip: Path, model_dir: Path, module_broker: Broker
) -> None:
    """More idle sockets than the process may open files (systemd's default, 1024): the
    oldest idle ones are closed for new ones, a logged-in client is
    served and can still switch models (which opens files), and the log says so in a few
    lines, not one per socket."""
    args = ["--source", str(clip), "--loop", "--mqtt-host", "127.0.0.1", "--mqtt-port",
            str(module_broker.port), "--snapshot-interval", "0", "--workers", "1"]  # fmt: skip
    env = {"CAMAPP_HTTP_PASSWORD": PASSWORD}
    live = LiveCamapp(args, model_dir, env=env, files=1024)
    where = ("127.0.0.1", live.port)
    idle: list[socket.socket] = []
    try:
        owner = Http(live.port)
        assert owner.login(PASSWORD) == 200
        idle = [socket.create_connection(where, 10)]  # the oldest
        with ThreadPoolExecutor(8) as pool:
            idle += pool.map(lambda _: socket.create_connection(where, 10), range(1049))
        until(lambda: owner.request("GET", "/api/session")[0] == 200, 5)  # idle for a second
        assert owner.request("GET", "/")[0] == 200
        # A zoo model (a `set` takes models only from the places a camera offers).
        status, body = owner.post("/api/cameras/cam0/set", {"model": "mobilenet_v2_int8"})
        assert status == 200, body
        until(lambda: open_ones(idle) <= MAX_CONNECTIONS, 5)  # the rest refused or closed
        assert idle[0].recv(64) == b""  # the oldest: closed for a newer connection
    finally:
        for sock in idle:
            sock.close()
        code, err = live.stop()
    assert code == 0, err[-500:]
    assert "Too many open files" not in err and "accept" not in err, err[-500:]
    door = [line for line in err.splitlines() if "live view:" in line and "connection" in line]
    assert 1 <= len(door) <= 3 * BURST, door  # closed, refused, timed out: BURST lines each


def open_ones(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server keeps open: neither answered nor closed."""
    count = 0
    for sock in sockets:
        sock.settimeout(0)
        try:
            sock.recv(64, socket.MSG_PEEK)
        except BlockingIOError:
            count += 1
    return count


def test_a_request_that_never_ends_is_cut_off(guarded: LiveCamapp) -> None:
    """Headers sent slowly, or nothing at all: closed HEADER_S after the connection opened;
    a body that stops half-way: answered 408 after HEADER_S."""
    silent, slow, body = (
        socket.create_connection(("127.0.0.1", guarded.port), timeout=HEADER_S + 5)
        for _ in range(3)
    )
    try:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        host = f"127.0.0.1:{guarded.port}".encode()
        body.sendall(b"POST /api/login HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 100\r\n\r\n{\"password\"")  # fmt: skip
        start = time.monotonic()
        for sock in (silent, slow):
            assert sock.recv(1024) == b""  # closed by the server, without a word
        assert body.recv(1024).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < HEADER_S + 2
    finally:
        for sock in (silent, slow, body):
            sock.close()


def test_logins_are_limited_per_address_under_a_ceiling() -> None:
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(LOGIN_PER_CLIENT - 2):
        assert limiter.begin("192.0.2.1") is None
        limiter.end("192.0.2.1", ok=False)
    assert limiter.begin("192.0.2.1") is None and limiter.begin("192.0.2.1") is None
    # The two still being checked count already: the 11th is refused at once.
    assert "this address" in (limiter.begin("192.0.2.1") or "")
    limiter.end("192.0.2.1", ok=False)
    limiter.end("192.0.2.1", ok=False)
    assert limiter.begin("192.0.2.1") is not None
    assert limiter.begin("::ffff:192.0.2.1") is not None  # the same client
    assert limiter.begin("192.0.2.2") is None  # another client
    limiter.end("192.0.2.2", ok=True)  # a right password is not held against anyone
    assert limiter.begin("192.0.2.2") is None
    limiter.end("192.0.2.2", ok=True)
    # One IPv6 host has a /64: it is one client.
    for n in range(LOGIN_PER_CLIENT):
        assert limiter.begin(f"2001:db8::{n + 1}") is None
        limiter.end(f"2001:db8::{n + 1}", ok=False)
    assert limiter.begin("2001:db8::ffff") is not None
    assert limiter.begin("2001:db8:0:1::1") is None
    limiter.end("2001:db8:0:1::1", ok=True)
    # Many addresses: the ceiling. 20 failures so far.
    for n in range(LOGIN_TOTAL - 2 * LOGIN_PER_CLIENT):
        assert limiter.begin(f"198.51.100.{n}") is None
        limiter.end(f"198.51.100.{n}", ok=False)
    assert "wait a minute" in (limiter.begin("203.0.113.1") or "")
    now[0] += 61  # a minute on, every address may try again
    assert limiter.begin("192.0.2.1") is None and limiter.begin("203.0.113.1") is None


def test_logins_waiting_for_the_check_are_capped() -> None:
    limiter = LoginLimiter()
    for n in range(LOGIN_WAITING):
        assert limiter.begin(f"192.0.2.{n}") is None
    assert "at once" in (limiter.begin("192.0.2.100") or "")
    limiter.end("192.0.2.0", ok=True)
    assert limiter.begin("192.0.2.100") is None


def test_sessions_are_bounded_and_expire() -> None:
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    tokens = [sessions.create() for _ in range(40)]
    assert not sessions.valid(tokens[0]) and sessions.valid(tokens[-1])
    assert sessions.csrf_ok(tokens[-1], sessions.csrf(tokens[-1]))
    assert not sessions.csrf_ok(tokens[-1], sessions.csrf(tokens[-2]))
    now[0] += 8 * 86400
    assert not sessions.valid(tokens[-1])
