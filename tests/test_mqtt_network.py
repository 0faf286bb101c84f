"""The MQTT network thread (publish/network.py): paced writes, its reconnecting, its end.

Against a real mosquitto: a paho client driven by `NetworkLoop`, as `MqttPublisher` drives
its own.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from camapp.config.schema import MqttSettings
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.network import PACE, NetworkLoop
from tests.test_mqtt_reliability import connected, count_calls, wait_until

TOPIC = "camapp/net/classification"


def test_messages_published_close_together_leave_in_few_writes(broker, subscriber_factory):
    """A camera at full speed: each message 0.3 ms after the last. paho's own thread wrote
    each one apart (one wake-up, one write each); the network thread writes what came in
    one tick together, and every message still arrives, in order."""
    sub = subscriber_factory(broker.port, [TOPIC])
    publisher = MqttPublisher(MqttSettings(port=broker.port), "camapp-net")
    online = connected(publisher)
    publisher.start()
    assert online.wait(10)
    writes = count_calls(publisher._client, "loop_write")
    sent = 200
    start = time.monotonic()
    for n in range(sent):
        publisher.publish(TOPIC, b"%d" % n)
        time.sleep(0.0003)
    spread = time.monotonic() - start
    sub.wait_for(lambda: len(sub.on(TOPIC)) == sent)
    assert [int(m.payload) for m in sub.on(TOPIC)] == list(range(sent))
    # One write per tick at most, and one for a message after a quiet tick: well under one
    # per message however slowly this machine ran the loop above.
    ticks = spread / PACE
    assert len(writes) <= min(sent / 2, 2 * ticks + 10), (len(writes), spread)
    assert publisher.close() == 0


def test_a_callback_that_raises_costs_the_connection_not_the_thread(broker, caplog):
    """paho's own thread ended for good on an exception escaping a callback: nothing would
    be sent or received again. The network thread logs it, reconnects and goes on."""
    seen: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="camapp-raises")
    client.on_connect = lambda c, *a: c.subscribe("camapp/net/in", qos=1)

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        seen.append(msg.payload)
        if msg.payload == b"boom":
            raise RuntimeError("a handler's bug")

    client.on_message = on_message
    client.connect_async("127.0.0.1", broker.port, keepalive=30)
    network = NetworkLoop(client, min_delay=0.1, max_delay=0.2)
    network.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="camapp-sender")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        wait_until(client.is_connected, 10)
        sender.publish("camapp/net/in", b"boom", qos=1).wait_for_publish(10)
        wait_until(lambda: "MQTT network loop failed" in caplog.text, 10)
        wait_until(client.is_connected, 10)
        time.sleep(0.2)  # the subscription goes out with the new connection's CONNECT
        sender.publish("camapp/net/in", b"after", qos=1).wait_for_publish(10)
        wait_until(lambda: b"after" in seen, 10)
    finally:
        sender.disconnect()
        sender.loop_stop()
        client.disconnect()
        network.leave()
        network.join(2.0)


def test_a_publish_whose_write_flag_comes_late_still_wakes_the_next_one(broker, subscriber_factory):
    """paho sets its "a write is due" flag after queueing the packet: a publishing thread
    preempted in between finds its packet already written at the next tick, and leaves the
    flag set with nothing to write. Unless the thread resets it, no later publish wakes the
    thread, and the next message waits a whole idle second."""
    sub = subscriber_factory(broker.port, ["camapp/net/late"])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="camapp-late")
    client.connect_async("127.0.0.1", broker.port, keepalive=30)
    network = NetworkLoop(client, min_delay=0.1, max_delay=0.2)
    network.start()
    real = client._call_socket_register_write
    late = threading.Event()

    def preempted() -> None:  # the publishing thread loses the CPU right after the append
        if late.is_set():
            late.clear()
            time.sleep(0.02)  # ten ticks: the thread writes the packet meanwhile
        real()

    client._call_socket_register_write = preempted
    try:
        wait_until(client.is_connected, 10)
        client.publish("camapp/net/late", b"first", qos=1)
        late.set()
        client.publish("camapp/net/late", b"late", qos=1)
        time.sleep(0.05)  # the thread is back to its idle wait
        published = time.monotonic()
        client.publish("camapp/net/late", b"next", qos=1)
        sub.wait_for(lambda: len(sub.on("camapp/net/late")) == 3, 5)
        assert time.monotonic() - published < 0.5
    finally:
        client.disconnect()
        network.leave()
        network.join(2.0)


@pytest.mark.parametrize("broker_up", [True, False])
def test_close_ends_the_network_thread_at_once(broker, broker_up: bool) -> None:
    """Connected (a clean DISCONNECT goes out) or waiting to connect again (the delay is cut
    short), close() leaves no thread of the publisher behind, and takes no longer than its
    wait for the outbox to drain."""
    if not broker_up:
        broker.stop()
    before = set(threading.enumerate())
    publisher = MqttPublisher(MqttSettings(port=broker.port), "camapp-ends", None, ["a/b"])
    online = connected(publisher)
    publisher.start()
    if broker_up:
        assert online.wait(10)
    else:
        time.sleep(1.3)  # two attempts failed: the thread waits 2 s to try again
    start = time.monotonic()
    assert publisher.close(timeout=0.5) == (0 if broker_up else 1)  # `offline`, or not
    assert time.monotonic() - start < 1.5
    wait_until(lambda: not (set(threading.enumerate()) - before), 5)


def test_a_publisher_closed_before_it_started_closes_quietly() -> None:
    assert MqttPublisher(MqttSettings(port=1), "camapp-never").close(timeout=0.1) == 0
