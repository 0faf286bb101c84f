"""Where a classification's CPU goes, stage by stage, with camapp's real parts in one process.

Each stage runs alone on this thread, many times over, and is timed in thread CPU time (the
fastest of several repeats, so that a burst of load elsewhere counts least): the capture
hand-off with the queue and hub, preprocessing (a frame in memory, as a Pi's ISP hands it over,
and a decoded file frame), invoke, top-k, the reorder buffer with the counters, the message
and its JSON, the outbox's bookkeeping, and the hand-over to a connected publisher (paho's
publish included). paho's network thread, which writes each message and reads its PUBACK, is
measured from /proc while the publishes run.

    python benchmarks/hot_path.py [--frames 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from paths import INT8, MEDIA  # also puts camapp from this checkout on the path

from camapp.bench.broker import Broker
from camapp.capture.memory import MemorySource
from camapp.capture.opencv import FileSource
from camapp.config.schema import MqttSettings
from camapp.inference import loader
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.outbox import Kind, Message, Outbox
from camapp.publish.sinks import ClassificationSink
from camapp.publish.topics import Channel
from camapp.runtime.camera import Camera, CameraPlan, Result
from camapp.runtime.controls import Controls
from camapp.runtime.frames import Hub

CLIP = MEDIA / "car-detection.mp4"
_TICK = os.sysconf("SC_CLK_TCK")
PACE = 0.002  # s between messages: about a classification's, so each goes alone


class Discard:
    """A publisher that drops every message: the sink's own work, without MQTT."""

    def publish(self, *_: object, **__: object) -> None:
        """Nothing to do."""


def cpu_us(call: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Thread CPU µs per call: the fastest of `repeats` runs of `n` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(n):
            call()
        best = min(best, time.thread_time() - start)
    return best * 1e6 / n


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one of this process's threads."""
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def stages(n: int) -> dict[str, float]:
    """µs of CPU per classification for each stage but MQTT's."""
    setup = loader.plan(str(INT8))
    classifier = loader.load(setup)
    memory = MemorySource(str(CLIP), classifier.size[1], loop=True)
    video = FileSource(CLIP, realtime=False)
    decoded = video.read()
    video.close()
    assert decoded is not None
    hub: Hub[None] = Hub(2)
    queue = hub.queue(None, 2, drop_oldest=False)
    tensor = classifier.preprocess.spec
    # Not the interpreter's own input: a view of it held across invoke() makes LiteRT refuse.
    out = np.empty((tensor.height, tensor.width, 3), tensor.dtype)
    camera = Camera(CameraPlan("bench"), (setup,), memory, [], Controls(), Hub(2), False,
                    threading.Event(), lambda error: None)  # type: ignore[arg-type]  # fmt: skip
    classifier.classify(memory.read().image)  # type: ignore[union-attr]
    classification = classifier.classify(memory.read().image)  # type: ignore[union-attr]
    result = Result(0, time.time(), time.monotonic(), classification)
    tickets = iter(range(10**9))
    scores = classifier._output()[0].copy()
    in_memory = memory.read().image  # type: ignore[union-attr]
    sink = ClassificationSink(Channel(Discard(), "camapp", "bench"))  # type: ignore[arg-type]
    times = {
        "capture hand-off: read a frame in memory, queue it, a worker takes it": cpu_us(
            lambda: (queue.put(memory.read()), hub.get(0)),  # type: ignore[arg-type]
            n,
        ),
        f"preprocess a frame in memory ({in_memory.shape[1]}x{in_memory.shape[0]})": cpu_us(
            lambda: classifier.preprocess(in_memory, False, out), n
        ),
        f"preprocess a decoded file frame ({decoded.image.shape[1]}x"
        f"{decoded.image.shape[0]}, BGR)": cpu_us(
            lambda: classifier.preprocess(decoded.image, True, out), n
        ),
        f"invoke ({tensor.width}x{tensor.height}, 1 thread)": cpu_us(classifier._invoke, n // 10),
        "top-k (5 of 1001, labelled)": cpu_us(lambda: classifier._top(scores, 1), n),
        "reorder buffer and counters (deliver, no sink)": cpu_us(
            lambda: camera.deliver(next(tickets), result), n
        ),
        "message, JSON and topic (the sink, publisher left out)": cpu_us(
            lambda: sink.send(result), n
        ),
    }
    return times


def outbox_us(n: int) -> float:
    """The outbox's bookkeeping for one message: add, take, acknowledge."""
    box = Outbox(1000, 10**7)
    mids = iter(range(10**9))

    def one() -> None:
        box.add(Message("camapp/bench/classification", b"x" * 400, False, Kind.BULK))
        message = box.take()
        assert message is not None
        message.mid = next(mids)
        box.acked(message.mid)

    return cpu_us(one, n)


def mqtt(n: int) -> tuple[float, float]:
    """(the worker's hand-over to a connected publisher, paho's network thread), µs per
    classification, through a private mosquitto at QoS 1 and MQTT 5 as by default."""
    classifier = loader.load(loader.plan(str(INT8)))
    memory = MemorySource(str(CLIP), classifier.size[1])
    result = Result(0, time.time(), time.monotonic(), classifier.classify(memory._frames[0]))
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        publisher = MqttPublisher(MqttSettings(port=broker.port), "camapp-bench", None, [])
        sink = ClassificationSink(Channel(publisher, "camapp", "bench"))
        publisher.start()
        try:
            while not publisher._online:
                time.sleep(0.01)
            paho = next(t for t in threading.enumerate() if t.name.startswith("paho"))
            network = thread_cpu_s(paho.native_id)  # type: ignore[arg-type]
            idle = cpu_us(lambda: time.sleep(PACE), n // 10, 1)  # the pause's own cost
            start = time.thread_time()
            for _ in range(n):
                sink.send(result)
                time.sleep(PACE)
            worker = (time.thread_time() - start) * 1e6 / n - idle
            while publisher.undelivered:
                time.sleep(0.01)
            network = (thread_cpu_s(paho.native_id) - network) * 1e6 / n  # type: ignore[arg-type]
        finally:
            publisher.close()
            broker.stop()
    return worker, network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| stage | CPU µs per classification |\n|---|---|")
    for name, us in stages(args.frames).items():
        print(f"| {name} | {us:.1f} |")
    print(f"| outbox: add, take, acknowledge | {outbox_us(args.frames):.1f} |")
    worker, network = mqtt(args.frames // 2)
    print(f"| MQTT: hand-over to paho on the worker (publish included) | {worker:.1f} |")
    print(f"| MQTT: paho's network thread (write, PUBACK, on_publish) | {network:.1f} |")


if __name__ == "__main__":
    main()
