"""What a camera says about itself when things go wrong: stopping with a backlog, a server
that never answers, floods, oversized commands, a shared client id, a broker's ACL.

Every test runs the real MqttPublisher against a real mosquitto (or a real socket that
behaves like the faulty server), in this process, so that the log lines can be counted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from camapp.config.load import check
from camapp.config.schema import HaSettings, MqttSettings
from camapp.errors import ConfigError
from camapp.publish import ha
from camapp.publish.commands import (
    COMMAND_BURST,
    COMMANDS_PER_S,
    ECHO_LIMIT,
    LOGGED,
    MAX_COMMAND_BYTES,
    CommandHandler,
    TokenBucket,
)
from camapp.publish.ha import REANNOUNCE_DELAY, Discovery
from camapp.publish.mqtt import WINDOW, MqttPublisher, Shed
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.controls import ControlError, Controls
from tests.mqtt_helpers import Broker, Proxy, free_port
from tests.test_mqtt_security import make_certs

CLASSIFICATION = json.dumps({"frame": 0, "label": "espresso", "score": 0.8, "pad": "x" * 1000})


def camera(
    settings: MqttSettings, camera_id: str, availability: bool = True
) -> tuple[MqttPublisher, Channel]:
    """A one-camera connection, as the app wires it: the publisher and the camera's topics."""
    topics = [f"camapp/{camera_id}/availability"] if availability else []
    client_id = settings.client_id or f"camapp-{camera_id}"
    publisher = MqttPublisher(settings, client_id, None, topics)
    return publisher, Channel(publisher, "camapp", camera_id, tuple(topics))


def commands(channel: Channel) -> Controls:
    """A camera's `set` handler, registered as the app does."""
    controls = Controls()
    handler = CommandHandler(channel, controls)
    channel.subscribe("set", handler.handle)
    channel.publisher.on_connected(handler.publish_config)
    return controls


@pytest.fixture(autouse=True)
def _log_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="camapp")


def lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if needle in r.getMessage()]


def wait_for_log(caplog: pytest.LogCaptureFixture, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not lines(caplog, needle):
        assert time.monotonic() < deadline, f"no log line with {needle!r}:\n{caplog.text}"
        time.sleep(0.05)


def connected(publisher: MqttPublisher) -> threading.Event:
    """Set once the publisher has its CONNACK and sends: later than the broker's log line,
    which a publish just after it could beat (its messages then count as shed offline)."""
    online = threading.Event()
    publisher.on_connected(online.set)
    return online


def count_calls(owner: object, name: str) -> list[float]:
    """Spy on a real method: each call runs it, then records when it returned."""
    calls: list[float] = []
    real = getattr(owner, name)

    def counted(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)
        calls.append(time.monotonic())
        return result

    setattr(owner, name, counted)
    return calls


def wait_until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def payloads(sub, topic: str) -> list[bytes]:
    return [m.payload for m in sub.on(topic)]


def retained(port: int, topic: str, subscriber_factory) -> bytes:
    """The payload the broker keeps on `topic`, as a subscriber arriving now sees it."""
    late = subscriber_factory(port, [topic])
    late.wait_for(lambda: len(late.messages) == 1)
    assert late.messages[0].retain
    return late.messages[0].payload


def connection_end(broker: Broker, client_id: str) -> str:
    """Wait until the broker logs the end of `client_id`'s connection: how it ended."""
    # mosquitto 2.0: "disconnected." after a DISCONNECT; "closed its connection.",
    # "disconnected: why." or "disconnected due to why." when the connection just ended.
    end = re.compile(rf"Client {client_id} (disconnected|closed its connection)(.*)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = end.search(broker.log.read_text())
        if found:
            clean = found[0].endswith(" disconnected.")
            return "DISCONNECT (will discarded)" if clean else f"'{found[0]}' (will published)"
        time.sleep(0.05)
    raise AssertionError(f"{client_id}'s connection did not end:\n{broker.log.read_text()}")


def backlog(channel: Channel, count: int = 1000) -> None:
    for _ in range(count):
        channel.publish("classification", CLASSIFICATION, kind=Kind.BULK)


# -- 1. a stopped camera never looks alive ----------------------------------------------------


def test_stop_with_a_backlog_on_a_slow_link_leaves_offline_retained(
    broker, subscriber_factory, capsys
) -> None:
    """1000 messages on a link whose answers take 0.1 s cannot drain in a 1 s close: `offline`
    still ends up retained (the will, as the connection ends without DISCONNECT)."""
    topic = "camapp/slow/availability"
    live = subscriber_factory(broker.port, [topic])
    proxy = Proxy(broker.port)
    publisher, channel = camera(MqttSettings(port=proxy.port), "slow")
    try:
        publisher.start()
        live.wait_for(lambda: payloads(live, topic) == [b"online"])
        proxy.delay(0.1)
        backlog(channel)
        left = publisher.close(timeout=1.0)
        how = connection_end(broker, "camapp-slow")  # once the link relayed what it had
    finally:
        proxy.close()
    assert left > 500  # the case under test: most of the backlog never left
    assert retained(broker.port, topic, subscriber_factory) == b"offline"
    with capsys.disabled():
        print(
            f"\n[stop on a slow link] 1000 messages queued, {left} undelivered after a 1 s close;"
            f" connection ended by {how}; availability seen live: {payloads(live, topic)}"
        )


def test_stop_while_reconnecting_after_an_outage_leaves_offline_retained(
    broker, subscriber_factory, capsys
) -> None:
    """The broker is unreachable when the stop begins and comes back during the close: the
    `online` of that reconnection must not be what stays retained."""
    topic = "camapp/outage/availability"
    live = subscriber_factory(broker.port, [topic])
    proxy = Proxy(broker.port)
    proxy.cut()
    proxy.delay(0.1)
    publisher, channel = camera(MqttSettings(port=proxy.port), "outage")
    try:
        publisher.start()
        backlog(channel)
        threading.Timer(0.3, proxy.restore).start()
        left = publisher.close(timeout=3.0)
        assert "as camapp-outage" in broker.log.read_text()  # it did reconnect while closing
        how = connection_end(broker, "camapp-outage")
    finally:
        proxy.close()
    assert left > 500
    assert retained(broker.port, topic, subscriber_factory) == b"offline"
    assert payloads(live, topic)[-1:] == [b"offline"]
    with capsys.disabled():
        print(
            f"\n[stop during an outage] {left} of 1000 undelivered after a 3 s close;"
            f" connection ended by {how}; availability seen live: {payloads(live, topic)}"
        )


# -- 2. a server that never completes the MQTT handshake is named ------------------------------


def test_a_server_that_never_answers_connect_is_named_once(caplog) -> None:
    server = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody ever answers
    port = server.getsockname()[1]
    settings = MqttSettings(host="127.0.0.1", port=port, connect_timeout=1.0)
    publisher, _ = camera(settings, "mute", availability=False)
    ticks = count_calls(publisher._watch, "tick")  # the checks that would report again
    try:
        publisher.start()
        wait_for_log(caplog, "no MQTT answer")
        seen = len(ticks)
        wait_until(lambda: len(ticks) >= seen + 3)  # checked past two more timeouts: one line
    finally:
        publisher.close(timeout=0)
        server.close()
    [line] = lines(caplog, "no MQTT answer")
    assert f"127.0.0.1:{port} within 1 s" in line, line
    assert "not an MQTT broker, or a TLS port (set mqtt tls)" in line, line


def test_a_plain_client_on_a_tls_port_is_named_once(tmp_path: Path, caplog) -> None:
    certs = make_certs(tmp_path)
    tls_port = free_port()
    broker = Broker(
        tmp_path,
        f"listener {tls_port} 127.0.0.1\ncertfile {certs['server.pem']}\n"
        f"keyfile {certs['server.key']}\n",
    ).start()
    settings = MqttSettings(host="127.0.0.1", port=tls_port)
    publisher, _ = camera(settings, "plain", availability=False)
    try:
        publisher.start()
        wait_for_log(caplog, "without an MQTT answer")
        # paho retries after 1 s and 2 s more: two more failed handshakes, still one line
        wait_until(lambda: broker.log.read_text().count("wrong version number") >= 3)
    finally:
        publisher.close(timeout=0)
        broker.stop()
    [line] = lines(caplog, "without an MQTT answer")
    assert f"127.0.0.1:{tls_port}" in line and "a TLS port (set mqtt tls)" in line, line


# -- 3. floods are coalesced, and shedding names its cause -------------------------------------


@contextlib.contextmanager
def flooded(
    channel: Channel, port: int, topic: str, payload: str | bytes, times: int, qos: int = 0
) -> Iterator[list[float]]:
    """The pipeline publishing numbered classifications, 200 a second on a thread, while
    another client sends `payload` to `topic` `times` times; yields [the slowest publish(), s]."""
    stop, slowest = threading.Event(), [0.0]

    def classify() -> None:
        for frame in itertools.count():
            if stop.is_set():
                return
            started = time.perf_counter()
            channel.publish("classification", json.dumps({"frame": frame}), kind=Kind.BULK)
            slowest[0] = max(slowest[0], time.perf_counter() - started)
            time.sleep(0.005)

    worker = threading.Thread(target=classify)
    worker.start()
    flooder = mqtt.Client(CallbackAPIVersion.VERSION2)
    flooder.connect("127.0.0.1", port)
    flooder.loop_start()
    try:
        for _ in range(times):
            flooder.publish(topic, payload, qos=qos)
        yield slowest
    finally:
        flooder.disconnect()
        flooder.loop_stop()
        stop.set()
        worker.join()


def test_home_assistant_status_flood_is_coalesced_and_sheds_nothing(
    broker, subscriber_factory, capsys
) -> None:
    configs = subscriber_factory(broker.port, ["homeassistant/+/camapp-flood/+/config"])
    settings = MqttSettings(port=broker.port, buffer_messages=2000)
    publisher, channel = camera(settings, "flood", availability=False)
    described = ha.Camera(channel, 1, "mobilenet", ("cat", "dog"))
    entities = len(ha.discovery_configs(described, "homeassistant"))
    discovery = Discovery(described, HaSettings())
    publisher.on_connected(discovery.announce)
    publisher.subscribe(discovery.status_topic, discovery.on_status)
    publisher.start()
    configs.wait_for(lambda: len(configs.messages) == entities)
    try:
        with flooded(channel, broker.port, "homeassistant/status", "online", 3000) as slowest:
            configs.wait_for(lambda: len(configs.messages) >= 2 * entities)  # it was heard
            count = -1
            while count != len(configs.messages):  # until quiet for longer than the coalescing
                count = len(configs.messages)
                time.sleep(REANNOUNCE_DELAY + 1)
    finally:
        left = publisher.close()
    announcements = len(configs.messages) // entities - 1
    assert publisher.dropped == 0 and left == 0
    assert 1 <= announcements <= 5, announcements
    with capsys.disabled():
        print(
            f"\n[3000 x homeassistant/status online] {announcements} re-announcement(s),"
            f" {publisher.dropped} messages shed, slowest publish() {slowest[0] * 1000:.1f} ms"
        )


@pytest.mark.parametrize("command", [b"{}", b'{"stride": 0}'])
def test_a_flood_of_commands_crowds_no_classification_out(
    broker, subscriber_factory, command: bytes
) -> None:
    """Each command is answered (`config` or `error`): a flood of them, answered as fast as
    they came, filled the outbox, which sheds classifications first. Past COMMAND_BURST a
    camera takes COMMANDS_PER_S a second and says once a second how many it refused."""
    topics = ["camapp/cmd/config", "camapp/cmd/error", "camapp/cmd/classification"]
    sub = subscriber_factory(broker.port, topics)
    settings = MqttSettings(port=broker.port, buffer_messages=1000)
    publisher, channel = camera(settings, "cmd", availability=False)
    controls = commands(channel)
    publisher.start()
    sub.wait_for(lambda: len(sub.on(topics[0])) == 1)
    flood = f"more than {COMMANDS_PER_S} commands a second: "

    def accounted() -> tuple[int, list[int]]:
        """Commands answered one by one, and the counts of the answers to refusals."""
        errors = [json.loads(m.payload)["error"] for m in sub.on(topics[1])]
        said = [int(e.removeprefix(flood).split()[0]) for e in errors if e.startswith(flood)]
        return len(sub.on(topics[0])) - 1 + len(errors) - len(said), said

    try:
        with flooded(channel, broker.port, "camapp/cmd/set", command, 5000, qos=1):
            # qos 1: every command arrives, and is answered or counted within a second.
            sub.wait_for(lambda: sum(accounted()[1]) + accounted()[0] >= 5000)
    finally:
        left = publisher.close()
    assert publisher.dropped == 0 and left == 0
    frames = [json.loads(m.payload)["frame"] for m in sub.on(topics[2])]
    assert frames == list(range(len(frames))), "classifications lost or out of order"
    one_by_one, said = accounted()
    assert said and one_by_one + len(said) < 400, (one_by_one, said)
    assert one_by_one + sum(said) == 5000, "refusals left unsaid"  # the last ones too
    assert controls.get("stride") == 1


class Slow:
    """A command key that takes until `go` to check, as a model switch loads its model."""

    def __init__(self) -> None:
        self.started, self.go = threading.Event(), threading.Event()

    def prepare(self, value: Any) -> Callable[[], None]:
        self.started.set()
        assert self.go.wait(10)
        return lambda: None


def test_a_caller_that_waits_takes_its_turn_with_the_model_switches(broker) -> None:
    """The live view's switches queue where MQTT's do: one loads, one waits, more are
    refused at once, while a command that loads nothing is applied meanwhile."""
    publisher, channel = camera(MqttSettings(port=broker.port), "turn", availability=False)
    slow = Slow()
    handler = CommandHandler(channel, Controls(), {"model": slow}, slow=["model"])
    answers: list[dict[str, Any] | str] = []

    def switch() -> None:
        try:
            answers.append(handler.in_turn({"model": "m"}, "live view").result())
        except ControlError as exc:
            answers.append(str(exc))

    publisher.start()
    threads = [threading.Thread(target=switch) for _ in range(3)]
    try:
        threads[0].start()
        assert slow.started.wait(10)
        for thread in threads[1:]:
            thread.start()
        deadline = time.monotonic() + 10
        while not answers:  # the third is refused once the second waits
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert answers == ["model: another switch waits already; send it again once `config`"
                           " changes"]  # fmt: skip
        assert handler.in_turn({"stride": 2}, "live view").result(0)["stride"] == 2
    finally:
        slow.go.set()
        for thread in threads:
            thread.join(10)
        publisher.close()
    assert [type(a) for a in answers] == [str, dict, dict], answers


def test_a_switch_whose_caller_stopped_waiting_is_applied_without_an_error(
    broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The page closed, or the server stopping, cancels what a request awaits: a switch
    waiting its turn is still applied, and one loading can no longer be cancelled. The job
    handed a cancelled Future its result, and logged "command failed" with a traceback."""
    publisher, channel = camera(MqttSettings(port=broker.port), "gone", availability=False)
    slow = Slow()
    handler = CommandHandler(channel, Controls(), {"model": slow}, slow=["model"])
    publisher.start()
    try:
        loading = handler.in_turn({"model": "a"}, "live view")
        assert slow.started.wait(10)
        waiting = handler.in_turn({"model": "b"}, "live view")
        assert waiting.cancel() and not loading.cancel()
        slow.go.set()
        assert "model" not in loading.result(10)  # the settings in force
        deadline = time.monotonic() + 10
        while len(lines(caplog, "applied command")) < 2:
            assert time.monotonic() < deadline, "the cancelled switch was not applied"
            time.sleep(0.01)
    finally:
        slow.go.set()
        publisher.close()
    assert not lines(caplog, "command failed")


class OnePending:
    """A command key that one command at a time may set, its check taking a while (as a
    capture's limits count the dataset's files)."""

    def __init__(self) -> None:
        self.taken = 0

    def prepare(self, value: Any) -> Callable[[], None]:
        if self.taken:
            raise ControlError("capture: one is pending")
        time.sleep(0.2)  # the others arrive meanwhile
        return self._take

    def _take(self) -> None:
        self.taken += 1


def test_commands_at_once_cannot_both_pass_a_check_the_first_settles(broker) -> None:
    """The live view applies each command on a thread of its own: four captures at once
    against a limit of one are one accepted and three refused, not four accepted."""
    publisher, channel = camera(MqttSettings(port=broker.port), "once", availability=False)
    action = OnePending()
    handler = CommandHandler(channel, Controls(), {"capture": action})
    refused: list[str] = []
    publisher.start()  # the configs it publishes are delivered: close() need not wait them out

    together = threading.Barrier(4)

    def capture() -> None:
        together.wait(10)  # all four at once
        try:
            handler.in_turn({"capture": "cat"}, "live view").result()
        except ControlError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=capture) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        publisher.close()
    assert action.taken == 1 and refused == ["capture: one is pending"] * 3


def test_the_command_rate_is_a_burst_then_a_steady_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(COMMANDS_PER_S, COMMAND_BURST, lambda: now[0])
    assert sum(bucket.take() for _ in range(COMMAND_BURST + 50)) == COMMAND_BURST
    now[0] += 1.0
    assert sum(bucket.take() for _ in range(50)) == COMMANDS_PER_S
    now[0] += 3600.0  # a long quiet fills it up to the burst, not beyond
    assert sum(bucket.take() for _ in range(COMMAND_BURST + 50)) == COMMAND_BURST


class Takes:
    """A command key that takes any value (as a detector's `zones` takes 60 kB of them)."""

    def prepare(self, value: Any) -> Callable[[], None]:
        return lambda: None


def test_an_applied_command_is_logged_clipped(broker, caplog: pytest.LogCaptureFixture) -> None:
    publisher, channel = camera(MqttSettings(port=broker.port), "big", availability=False)
    handler = CommandHandler(channel, Controls(), {"zones": Takes()})
    publisher.start()
    try:
        handler.apply({"zones": ["x" * 60_000]}, "MQTT")
    finally:
        publisher.close()
    [line] = lines(caplog, "applied command")
    assert len(line) < LOGGED + 100 and "characters)" in line, len(line)


def test_shed_messages_are_counted_by_cause(broker, subscriber_factory) -> None:
    away, away_topics = camera(MqttSettings(port=free_port(), buffer_messages=10), "away")
    backlog(away_topics, 30)
    assert away.shed == Shed(offline=20, connected=0)
    assert "while the broker was away" in away.drop_warning()

    proxy = Proxy(broker.port)
    settings = MqttSettings(port=proxy.port, buffer_messages=30)
    busy, busy_topics = camera(settings, "busy", availability=False)
    try:
        online = connected(busy)
        busy.start()
        assert online.wait(20)
        proxy.stall()  # connected, as far as camapp knows, but nothing is acknowledged
        backlog(busy_topics, 100)
        assert busy.shed == Shed(offline=0, connected=70)  # 20 in flight + 10 queued kept
        warning = busy.drop_warning()
        assert "70 while connected" in warning and "broker was away" not in warning, warning
    finally:
        busy.close(timeout=0)
        proxy.close()


# -- 4. a huge command is refused, and never echoed whole --------------------------------------


def test_oversized_and_huge_bad_commands_are_refused_without_amplification(
    broker, subscriber_factory, caplog, capsys
) -> None:
    topics = ["camapp/cmd/config", "camapp/cmd/error"]
    sub = subscriber_factory(broker.port, topics)
    publisher, channel = camera(MqttSettings(port=broker.port), "cmd", availability=False)
    controls = commands(channel)
    publisher.start()
    try:
        sub.wait_for(lambda: len(sub.on(topics[0])) == 1)
        # Valid JSON, but 100 kB: refused unparsed, so nothing is applied.
        padded = b'{"stride": 2' + b" " * 100_000 + b"}"
        huge = json.dumps({"threshold": "v" * 1_000_000}).encode()  # 1 MB in
        # Under the limit, but the reason quotes the key or the value.
        long_key = json.dumps({"k" * 60_000: 1}).encode()
        long_value = json.dumps({"threshold": "v" * 60_000}).encode()
        sent = [padded, huge, long_key, long_value]
        for payload in sent:
            before = len(sub.on(topics[1]))
            sub.publish("camapp/cmd/set", payload)
            sub.wait_for(lambda b=before: len(sub.on(topics[1])) == b + 1)
    finally:
        publisher.close()
    replies = [m.payload for m in sub.on(topics[1])]
    errors = [json.loads(r) for r in replies]
    for error in errors[:2]:
        assert f"larger than {MAX_COMMAND_BYTES} bytes" in error["error"], error
    assert errors[2]["error"].startswith("unknown setting 'kkk"), errors[2]
    assert errors[3]["error"].startswith("threshold: must be a number"), errors[3]
    assert controls.get("stride") == 1 and len(sub.on(topics[0])) == 1  # nothing applied
    for error in errors:
        assert len(error["payload"]) <= ECHO_LIMIT + 30 and len(error["error"]) <= 250, error
    logged = lines(caplog, "rejected command")
    assert len(logged) == 4 and max(len(line) for line in logged) <= 300, logged
    with capsys.disabled():
        print(
            f"\n[set amplification] in: {[len(p) for p in sent]} bytes;"
            f" error replies {[len(r) for r in replies]} bytes;"
            f" log lines {[len(line) for line in logged]} characters"
        )


# -- 5. two processes with one client id -------------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_client_id_in_use_twice_is_named_in_one_line(
    broker, caplog, protocol: str, capsys
) -> None:
    settings = MqttSettings(port=broker.port, client_id="twin", protocol=protocol)
    twins = [camera(settings, "twin", availability=False)[0] for _ in range(2)]
    started = time.monotonic()
    try:
        for twin in twins:
            twin.start()
        wait_for_log(caplog, "another client is using client id twin", timeout=30)
        named = time.monotonic() - started
    finally:
        for twin in twins:
            twin.close(timeout=0)
    takeovers = broker.log.read_text().count("already connected")
    assert takeovers >= 3
    assert len(lines(caplog, "another client is using client id twin")) <= 2  # one per twin
    assert len(lines(caplog, "lost broker")) <= 2, caplog.text
    with capsys.disabled():
        print(
            f"\n[client id twice, MQTT {protocol}] named after {named:.1f} s and"
            f" {takeovers} takeovers; {len(lines(caplog, 'lost broker'))} 'lost broker' line(s)"
        )


# -- 6. MQTT 5: refusals, expiry, persistent sessions; 3.1.1 still there ----------------------


def test_acl_refusals_are_logged_once_and_counted(tmp_path: Path, caplog) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite camapp/acl/availability\ntopic read camapp/#\n")
    broker = Broker(tmp_path, f"acl_file {acl}\n").start()
    publisher, channel = camera(MqttSettings(port=broker.port), "acl")
    try:
        publisher.start()
        backlog(channel, 10)
        wait_until(lambda: publisher.undelivered == 0)
    finally:
        publisher.close()
        broker.stop()
    assert publisher.refused == 10  # the classifications; `availability` is allowed
    [line] = lines(caplog, "refused")
    assert "camapp/acl/classification" in line and "Not authorized" in line, line
    assert "10 MQTT messages refused" in publisher.refusal_error()


def test_classifications_expire_and_nothing_else_does(broker, subscriber_factory) -> None:
    sub = subscriber_factory(broker.port, ["camapp/exp/#"], protocol=mqtt.MQTTv5)
    publisher, channel = camera(MqttSettings(port=broker.port), "exp", availability=False)
    publisher.start()
    channel.publish("classification", CLASSIFICATION, kind=Kind.BULK)
    channel.publish("state", '{"label": "espresso"}', retain=True)
    sub.wait_for(lambda: len(sub.messages) == 2)
    publisher.close()
    classification, state = sub.on("camapp/exp/classification")[0], sub.on("camapp/exp/state")[0]
    assert 0 < classification.properties.MessageExpiryInterval <= 60
    assert not hasattr(state.properties, "MessageExpiryInterval")


def test_a_command_sent_while_the_camera_is_away_is_applied_when_it_returns(
    broker, subscriber_factory
) -> None:
    sub = subscriber_factory(broker.port, ["camapp/back/config"])

    def start() -> tuple[MqttPublisher, Controls]:
        publisher, channel = camera(MqttSettings(port=broker.port), "back", availability=False)
        controls = commands(channel)
        publisher.start()
        return publisher, controls

    first, _ = start()
    sub.wait_for(lambda: len(sub.messages) == 1)  # `config`, sent after subscribing to `set`
    sub.publish("camapp/back/set", json.dumps({"stride": 2}))
    sub.wait_for(lambda: len(sub.messages) == 2)
    first.close()
    sub.publish("camapp/back/set", json.dumps({"stride": 4}))  # nobody connected to take it
    again, controls = start()
    try:
        wait_until(lambda: controls.get("stride") == 4)
    finally:
        again.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_both_protocols_deliver(broker, subscriber_factory, protocol: str) -> None:
    sub = subscriber_factory(broker.port, ["camapp/proto/#"])
    publisher, channel = camera(MqttSettings(port=broker.port, protocol=protocol), "proto")
    publisher.start()
    sub.wait_for(lambda: payloads(sub, "camapp/proto/availability") == [b"online"])
    backlog(channel, 50)
    assert publisher.close() == 0
    sub.wait_for(lambda: len(sub.on("camapp/proto/classification")) == 50)
    sub.wait_for(lambda: payloads(sub, "camapp/proto/availability") == [b"online", b"offline"])
    # mosquitto's log: MQTT 5 with a persistent session (clean start 0), or 3.1.1 ("p2").
    assert ("(p5, c0," if protocol == "5" else "(p2, c1,") in broker.log.read_text()


def test_an_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"protocol: must be one of 5, 3.1.1 \(got '3'\)"):
        check(MqttSettings, {"protocol": "3"})
    assert check(MqttSettings, {"protocol": 5}).protocol == "5"  # TOML's `protocol = 5`


def fill_a_stalled_link(
    publisher: MqttPublisher, channel: Channel, proxy: Proxy, count: int, written: int
) -> int:
    """Connect through `proxy`, stall it, queue `count` classifications, and wait until
    `written` of them went out and the sender has had two more chances to send (each time it
    hands messages over: `_flush`). The size of one message on the wire."""
    rounds = count_calls(publisher, "_flush")
    online = connected(publisher)
    publisher.start()
    assert online.wait(20)
    proxy.stall()
    backlog(channel, count)
    size = len(channel.topic("classification")) + len(CLASSIFICATION)
    wait_until(lambda: proxy.swallowed >= written * size)
    seen = len(rounds)
    wait_until(lambda: len(rounds) >= seen + 2)  # two more chances to send: none taken
    return size


def test_no_more_than_the_window_is_in_flight_on_a_link_that_acknowledges_nothing(
    broker,
) -> None:
    """A dead link the client does not know about: WINDOW messages are handed to paho and
    written, the rest wait in the outbox (bounded, shed by its rules), however often the
    sender looks; without the window paho would take all of them."""
    proxy = Proxy(broker.port)
    publisher, channel = camera(MqttSettings(port=proxy.port), "stuck", availability=False)
    try:
        size = fill_a_stalled_link(publisher, channel, proxy, 100, WINDOW)
        assert publisher._outbox.in_flight == WINDOW and publisher.undelivered == 100
        assert proxy.swallowed < (WINDOW + 1) * size, proxy.swallowed
    finally:
        publisher.close(timeout=0)
        proxy.close()


def test_the_window_keeps_to_the_brokers_receive_maximum(tmp_path: Path) -> None:
    """An MQTT 5 broker that takes 5 unacknowledged messages gets no more than 5 at a time:
    on a link that swallows everything, 5 messages leave, not the 20 of the window."""
    broker = Broker(tmp_path, "max_inflight_messages 5\n").start()  # its Receive Maximum
    proxy = Proxy(broker.port)
    publisher, channel = camera(MqttSettings(port=proxy.port), "narrow", availability=False)
    try:
        size = fill_a_stalled_link(publisher, channel, proxy, 50, 5)
        assert publisher._outbox.in_flight == 5, publisher._outbox.in_flight
        assert proxy.swallowed < 6 * size, proxy.swallowed
    finally:
        publisher.close(timeout=0)
        proxy.close()
        broker.stop()
