"""RSS over many runtime model switches: a switch must not leave a model behind.

One `camapp run` replays a shared clip in a loop; `set {"model": ...}` then switches it back
and forth between two shared models N times over a private mosquitto, each switch waited for
(the retained `config` names the model in force, and a classification by it arrives). The
camera's RSS after the first ten switches and after the last must stay within 30 MB
(before the model cache was keyed by what the model is, 110 switches grew it by 1.2 GB).

    python benchmarks/model_switches.py [--switches 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paths import CLIPS, SHARED

from camapp.bench.broker import Broker
from camapp.models import display_name

MODELS = (
    SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite",
    SHARED / "models" / "mobilenet_v1_0.5_160_quant.tflite",
)
BOUND_MB = 30


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


class Watcher:
    """Which model the camera's classifications come from, as they arrive."""

    def __init__(self, port: int) -> None:
        self.model: str | None = None
        self.errors: list[str] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("camapp/sw/classification", 0), ("camapp/sw/error", 0)])
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _data: object, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        with self.changed:
            if msg.topic.endswith("error"):
                self.errors.append(payload.get("error", ""))
            else:
                self.model = payload["model"]
            self.changed.notify_all()

    def running(self, timeout: float = 60.0) -> None:
        """Wait for the camera's first classification: its `set` topic is subscribed then."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.model is not None, timeout):
                raise SystemExit(f"no classification within {timeout} s")

    def switch(self, model: Path, timeout: float = 30.0) -> None:
        """Ask for `model` and wait until a classification by it arrives."""
        with self.changed:
            self.model = None
        self.client.publish("camapp/sw/set", json.dumps({"model": str(model)}), qos=1)
        with self.changed:
            name = display_name(model)
            if not self.changed.wait_for(lambda: self.model == name or self.errors, timeout):
                raise SystemExit(f"no classification by {name} within {timeout} s")
        if self.errors:
            raise SystemExit(f"switch refused: {self.errors[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        command = [
            sys.executable, "-m", "camapp", "run", "--source", str(CLIPS[0]), "--loop",
            "--camera-id", "sw", "--mqtt-port", str(broker.port), "--model", str(MODELS[0]),
            "--no-ha-discovery", "--snapshot-interval", "0", "--dataset", f"{tmp}/ds",
        ]  # fmt: skip
        proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, cwd=tmp)
        try:
            watcher = Watcher(broker.port)
            watcher.running()
            samples = []
            start = time.monotonic()
            for n in range(1, args.switches + 1):
                watcher.switch(MODELS[n % 2])
                if n in (10, args.switches) or n % 100 == 0:
                    samples.append((n, rss_mb(proc.pid)))
                    print(f"after {n:4d} switches: RSS {samples[-1][1]:.1f} MB", flush=True)
            elapsed = time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait(30)
            broker.stop()
    growth = samples[-1][1] - samples[0][1]
    verdict = "within" if growth <= BOUND_MB else "OVER"
    print(
        f"{args.switches} switches in {elapsed:.0f} s: RSS {samples[0][1]:.1f} MB after 10, "
        f"{samples[-1][1]:.1f} MB after {args.switches} ({growth:+.1f} MB, {verdict} the "
        f"{BOUND_MB} MB bound)"
    )
    return 0 if growth <= BOUND_MB else 1


if __name__ == "__main__":
    sys.exit(main())
