"""What the live view costs: camapp's CPU with and without a viewer, and classifications/s.

1. The view alone: a 640x480 clip replayed at its pace (12.5 fps) with classification paused,
   so that what changes between windows is the live view's work: the tap, JPEG encoding at the
   capped 5 fps, the WebSocket. camapp's CPU (percent of one core, from /proc through psutil)
   in alternating windows without and with a viewer; the view's cost is the difference. The
   encoding alone is also timed in this process (FrameTap.encode on the same frames).
2. Classification at full speed (`realtime = false`, 2 workers): classifications/s counted on
   a private mosquitto in alternating windows without and with a viewer.

    python benchmarks/live_view.py [--window 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import cv2
import psutil

from camapp.bench.broker import Broker, free_port
from camapp.bench.harness import Receiver
from camapp.capture.opencv import FileSource
from camapp.runtime.tap import FrameTap

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


def clip_640x480(path: Path) -> Path:
    """The parking-lot clip's centre, 4:3, at 640x480 and its own 12.5 fps."""
    source = cv2.VideoCapture(str(MEDIA / "car-detection.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.5, (640, 480))
    while True:
        ok, frame = source.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        side = h * 4 // 3
        crop = frame[:, (w - side) // 2 : (w + side) // 2]
        writer.write(cv2.resize(crop, (640, 480), interpolation=cv2.INTER_AREA))
    writer.release()
    source.release()
    return path


class Viewer:
    """A page's WebSocket, in a thread of this process: counts the pictures it receives."""

    def __init__(self, port: int) -> None:
        self.port, self.pictures = port, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._view()), daemon=True)
        self._thread.start()

    async def _view(self) -> None:
        url = f"http://127.0.0.1:{self.port}"
        jar = aiohttp.CookieJar(unsafe=True)  # keep the session cookie of an IP address
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await (await session.get(url + "/")).read()  # loopback, no password: a session
            async with session.ws_connect(url + "/ws", origin=url) as ws:
                while not self._stop.is_set():
                    try:
                        message = await ws.receive(timeout=0.2)
                    except TimeoutError:
                        continue
                    if message.type == aiohttp.WSMsgType.BINARY:
                        self.pictures += 1
                    elif message.type != aiohttp.WSMsgType.TEXT:
                        return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def start(clip: Path, broker: Broker, http_port: int, extra: str, tmp: Path) -> subprocess.Popen:
    config = tmp / "live.toml"
    config.write_text(
        f'source = "{clip}"\nloop = true\nsnapshot_interval = 0\n{extra}\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'[http]\nbind = "127.0.0.1:{http_port}"\nview_fps = 5\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "camapp", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _answers(http_port):
            time.sleep(2)  # past start-up: model load, first frames
            return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"camapp did not start: {proc.stderr.read().decode()[-400:]}")


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/style.css")
        return conn.getresponse().status == 200
    except OSError:
        return False


def windows(proc: subprocess.Popen, port: int, window: float, rounds: int, count) -> dict:
    """Alternating windows without and with a viewer: CPU % of one core, `count()` per s."""
    usage = psutil.Process(proc.pid)
    out: dict[str, list[tuple[float, float, float]]] = {"without": [], "with": []}
    for _ in range(rounds):
        for label in ("without", "with"):
            viewer = Viewer(port) if label == "with" else None
            time.sleep(1.0)  # let the view start (or stop)
            cpu0, n0, t0 = _cpu(usage), count(), time.monotonic()
            pictures0 = viewer.pictures if viewer else 0
            time.sleep(window)
            elapsed = time.monotonic() - t0
            cpu = (_cpu(usage) - cpu0) / elapsed * 100
            rate = (count() - n0) / elapsed
            fps = (viewer.pictures - pictures0) / elapsed if viewer else 0.0
            out[label].append((cpu, rate, fps))
            if viewer:
                viewer.close()
    return out


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def encode_alone(clip: Path) -> float:
    """CPU ms per 640x480 JPEG, as the encoder thread makes them (CPU time: other processes
    on the machine would stretch wall time)."""
    source = FileSource(clip, realtime=False)
    frames = [source.read() for _ in range(60)]
    source.close()
    tap = FrameTap()
    for frame in frames[:10]:
        tap.encode(frame, 640)
    start = time.process_time()
    for frame in frames:
        tap.encode(frame, 640)
    return (time.process_time() - start) * 1000 / len(frames)


def report(title: str, results: dict) -> None:
    """Medians over the rounds; per CPU-second, as other processes on the machine take cores
    from camapp unevenly across windows."""
    print(f"\n{title}")
    print("| viewer | camapp CPU, % of one core | classifications/s | per CPU-second "
          "| pictures/s received |")  # fmt: skip
    print("|---|---|---|---|---|")
    medians = {}
    for label, rows in results.items():
        cpu, rate, fps = (statistics.median(column) for column in zip(*rows, strict=True))
        per_cpu = statistics.median(r / (c / 100) if c else 0.0 for c, r, _ in rows)
        medians[label] = (cpu, rate, per_cpu)
        print(f"| {label} | {cpu:.1f} | {rate:.1f} | {per_cpu:.0f} | {fps:.1f} |")
    (cpu_a, rate_a, eff_a), (cpu_b, rate_b, eff_b) = medians["without"], medians["with"]
    line = f"with a viewer: {cpu_b - cpu_a:+.1f} % of one core"
    if rate_a and eff_a:
        line += f"; classifications/s {rate_b / rate_a:.3f}x, per CPU-second {eff_b / eff_a:.3f}x"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camapp-live-") as name:
        tmp = Path(name)
        clip = clip_640x480(tmp / "lot640x480.mp4")
        per_picture = encode_alone(clip)
        print(f"JPEG of a 640x480 frame: {per_picture:.2f} ms; at 5 fps "
              f"{per_picture * 5 / 10:.2f} % of one core")  # fmt: skip
        broker = Broker(tmp).start()
        receiver = Receiver(broker.port, "camapp/cam0/classification", tmp)
        try:
            for title, extra in (
                ("1. paused, clip at its pace: the view's own cost", "paused = true"),
                ("2. full speed, 2 workers", "realtime = false\nworkers = 2"),
            ):
                port = free_port()
                proc = start(clip, broker, port, extra, tmp)
                try:
                    results = windows(proc, port, args.window, args.rounds,
                                      lambda: len(receiver.received))  # fmt: skip
                finally:
                    proc.terminate()
                    proc.wait(30)
                report(title, results)
        finally:
            receiver.close()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
