"""The outbox's bound and shedding order, without a broker: the data structure alone."""

from __future__ import annotations

from camapp.publish.outbox import Kind, Message, Outbox


def msg(topic: str, kind: Kind = Kind.BULK, retain: bool = False, size: int = 10) -> Message:
    return Message(topic, b"x" * size, retain, kind)


def topics(box: Outbox) -> list[str]:
    out = []
    while (m := box.take()) is not None:
        out.append(m.topic)
    return out


def test_bound_in_messages_sheds_the_oldest_classifications_first() -> None:
    box = Outbox(max_messages=4, max_bytes=10**6)
    box.add(msg("c0"))
    box.add(msg("state", Kind.KEEP, retain=True))
    box.add(msg("s0", Kind.TELEMETRY))
    for i in range(1, 6):
        box.add(msg(f"c{i}"))
    assert len(box) == 4 and box.dropped == 4
    assert topics(box) == ["state", "s0", "c4", "c5"]


def test_telemetry_goes_after_classifications_and_keep_never() -> None:
    box = Outbox(max_messages=2, max_bytes=10**6)
    box.add(msg("s0", Kind.TELEMETRY))
    box.add(msg("avail", Kind.KEEP, retain=True))
    box.add(msg("error", Kind.KEEP))
    assert topics(box) == ["avail", "error"] and box.dropped == 1


def test_superseded_retained_messages_go_last() -> None:
    box = Outbox(max_messages=2, max_bytes=10**6)
    for topic in ("state", "config", "state"):
        box.add(msg(topic, Kind.KEEP, retain=True))
    assert topics(box) == ["config", "state"] and box.dropped == 1


def test_bound_in_bytes() -> None:
    box = Outbox(max_messages=100, max_bytes=50)
    for i in range(10):
        box.add(msg(f"c{i}", size=8))  # 10 bytes each with the topic
    assert box.bytes <= 50 and len(box) == 5
    assert topics(box) == [f"c{i}" for i in range(5, 10)]


def test_unacknowledged_messages_go_back_in_front_in_order() -> None:
    box = Outbox(max_messages=100, max_bytes=10**6)
    for i in range(5):
        box.add(msg(f"c{i}"))
    for mid in (1, 2, 3):
        box.take().mid = mid
    box.acked(1)
    box.acked(99)  # unknown ids are ignored
    box.requeue()
    box.add(msg("online", Kind.KEEP, retain=True), front=True)
    assert topics(box) == ["online", "c1", "c2", "c3", "c4"]
    assert box.dropped == 0


def test_publisher_memory_stays_flat_while_the_broker_is_away() -> None:
    """A publisher that never connects: a long outage's worth of classifications costs no
    more memory than the bound, and every shed message is counted."""
    import tracemalloc

    from camapp.config.schema import MqttSettings
    from camapp.publish.mqtt import MqttPublisher

    publisher = MqttPublisher(
        MqttSettings(buffer_messages=500), "camapp-porch", None, ["camapp/porch/availability"]
    )
    payload = '{"frame": 0, "label": "espresso", "score": 0.8, "top_k": []}' * 8

    def outage(messages: int) -> None:
        for _ in range(messages):
            publisher.publish("camapp/porch/classification", payload, kind=Kind.BULK)

    tracemalloc.start()
    outage(1_000)
    before, _ = tracemalloc.get_traced_memory()
    outage(20_000)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert publisher.undelivered == 500 and publisher.dropped == 20_500
    assert after - before < 64 * 1024, after - before  # flat: no growth with the outage
