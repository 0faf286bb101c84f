"""The bounded outbound buffer between camapp and the MQTT client.

paho queues without limit while the broker is away; a camera offline for a day would fill
its memory. The outbox is bounded in messages and bytes, counts what it sheds, and sheds in
a fixed order so that what matters to Home Assistant survives any outage:

1. the oldest BULK message (classifications: one per frame, the newest matter most);
2. the oldest TELEMETRY message (stats, superseded by the next one anyway; errors);
3. a retained message a newer queued one on the same topic replaces (only the last
   retained value reaches a subscriber that connects later anyway).

KEEP messages (availability, state, config, discovery) are never dropped; with
rule 3 they are at most one per retained topic, so the bound holds in practice.

Messages handed to the client but not yet acknowledged stay here as "in flight": when the
connection drops, `requeue()` puts them back in front, in order, to be sent again.
The class does no locking; its owner (MqttPublisher) serialises every call.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class Kind(enum.IntEnum):
    """How readily a message is shed when the outbox is full (lowest first)."""

    BULK = 0
    TELEMETRY = 1
    KEEP = 2


@dataclass(slots=True, eq=False)
class Message:
    topic: str
    payload: bytes
    retain: bool
    kind: Kind
    mid: int | None = None  # the client's message id once handed over

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.payload)


class Outbox:
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._queued: deque[Message] = deque()
        self._inflight: list[Message] = []
        self._bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        """Messages not yet acknowledged: queued plus in flight."""
        return len(self._queued) + len(self._inflight)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def queued(self) -> int:
        """Messages not yet handed to the client."""
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def add(self, message: Message, front: bool = False) -> None:
        """Queue a message (at the back, or in front for availability), then shed to the bound."""
        if front:
            self._queued.appendleft(message)
        else:
            self._queued.append(message)
        self._bytes += message.size
        while len(self) > self.max_messages or self._bytes > self.max_bytes:
            victim = self._victim()
            if victim is None:
                break
            self._bytes -= self._queued[victim].size
            del self._queued[victim]
            self.dropped += 1

    def take(self) -> Message | None:
        """The next message to hand to the client; it stays counted until `done()`."""
        if not self._queued:
            return None
        message = self._queued.popleft()
        self._inflight.append(message)
        return message

    def done(self, message: Message) -> None:
        """The broker has it (or, at QoS 0, it was written out)."""
        self._inflight.remove(message)
        self._bytes -= message.size

    def acked(self, mid: int) -> Message | None:
        """The acknowledgement for message id `mid`: the message it was for, or None for an
        unknown (stale) id, which is ignored."""
        for message in self._inflight:
            if message.mid == mid:
                self.done(message)
                return message
        return None

    def requeue(self) -> None:
        """The connection dropped: unacknowledged messages go back in front, in order."""
        for message in reversed(self._inflight):
            message.mid = None
            self._queued.appendleft(message)
        self._inflight.clear()

    def _victim(self) -> int | None:
        """Index in the queue of the message to shed, by the rules in the module docstring."""
        for kind in (Kind.BULK, Kind.TELEMETRY):
            for i, message in enumerate(self._queued):
                if message.kind == kind:
                    return i
        newer: set[str] = set()
        for i in range(len(self._queued) - 1, -1, -1):
            message = self._queued[i]
            if message.retain and message.topic in newer:
                return i
            if message.retain:
                newer.add(message.topic)
        return None
