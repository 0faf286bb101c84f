"""What the pipeline's results become: a `classification` message on MQTT for each, and
with `--print` a readable line on stdout. (The debounced `state` has its own module,
state.py.) Sinks are called by the workers in frame order, one result at a time.
"""

from __future__ import annotations

import time
from typing import Any

from camapp.publish.mqtt import dumpb
from camapp.publish.outbox import Kind
from camapp.publish.topics import Channel
from camapp.runtime.camera import Result


def classification_message(result: Result, camera_id: str) -> dict[str, Any]:
    """The `classification` payload; `latency_ms` runs from capture to this moment."""
    top = result.classification.top_k
    return {
        "camera_id": camera_id,
        "frame": result.frame,
        "ts": round(result.ts, 3),
        "label": top[0].label,
        "class_id": top[0].class_id,
        "score": top[0].score,
        "top_k": [{"label": p.label, "class_id": p.class_id, "score": p.score} for p in top],
        "inference_ms": round(result.classification.inference_ms, 2),
        "latency_ms": round((time.monotonic() - result.mono) * 1000, 2),
        "model": result.classification.model,
    }


class ClassificationSink:
    """Publishes each result on `<base>/<camera_id>/classification`, first to go when the
    outbox is full."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def send(self, result: Result) -> None:
        message = classification_message(result, self._channel.camera_id)
        self._channel.publish("classification", dumpb(message), kind=Kind.BULK)


class PrintSink:
    """`--print`: one readable line per classification on stdout, as it is published."""

    def __init__(self, camera_id: str) -> None:
        self._camera_id = camera_id

    def send(self, result: Result) -> None:
        best = result.classification.top_k[0]
        latency = (time.monotonic() - result.mono) * 1000
        print(
            f"{self._camera_id} frame {result.frame:5d}  {best.label:40s} {best.score:4.2f}"
            f"  inference {result.classification.inference_ms:5.1f} ms  latency {latency:5.1f} ms",
            flush=True,
        )
