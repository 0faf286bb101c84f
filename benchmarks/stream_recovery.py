"""How soon do frames flow again after a stream's outage, and how often is a dead one tried?

Serves the real clip from real servers on loopback (GStreamer's RTSP server, ffmpeg's HTTP
MJPEG; `make streams` installs them), reads it through camapp's `CaptureSource` wrapped in
`Reconnecting`, stops the server for each outage length and starts it again on the same port.
Reports, per kind of stream, the seconds from the server's return to the first new frame and
the attempts made during the outage; then, with the server left down for `--down` seconds,
the attempts in each minute of it. `--old` reproduces the policy before the fix (exponential
backoff from the first failure, FFmpeg's full stream probe), for comparison.

    .venv/bin/python benchmarks/stream_recovery.py [--outages 3 8 25] [--down 60] [--old]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camapp.capture import Reconnecting  # noqa: E402
from camapp.capture.opencv import CaptureSource  # noqa: E402
from camapp.capture.opencv_setup import configure_opencv  # noqa: E402
from tests.stream_servers import MjpegServer, RtspServer  # noqa: E402

SERVERS = {"rtsp": RtspServer, "mjpeg": MjpegServer}


def first_frame_after(arrivals: list[float], since: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while not arrivals or arrivals[-1] <= since:
        if time.monotonic() > deadline:
            return float("nan")
        time.sleep(0.005)
    return next(t for t in arrivals if t > since) - since


def read_all(source: Reconnecting, arrivals: list[float]) -> None:
    while source.read() is not None:
        arrivals.append(time.monotonic())


def measure(kind: str, outages: list[float], down: float, old: bool) -> None:
    server = SERVERS[kind]().start()
    attempts: list[float] = []

    def opener() -> CaptureSource:
        attempts.append(time.monotonic())
        return CaptureSource(server.url)

    stop = threading.Event()
    started = time.monotonic()
    policy = {"patience": 0.0} if old else {}
    source = Reconnecting(opener, stop, opener(), **policy)
    print(f"{kind}: opened in {time.monotonic() - started:.2f} s")
    arrivals: list[float] = []
    reader = threading.Thread(target=read_all, args=(source, arrivals), daemon=True)
    reader.start()
    for outage in outages:
        time.sleep(1.0)
        tried = len(attempts)
        server.stop()
        time.sleep(outage)
        server.start()
        back = first_frame_after(arrivals, time.monotonic())
        print(f"{kind}: {outage:g} s outage: first frame {back:.2f} s after the server's return,"
              f" {len(attempts) - tried} attempts")  # fmt: skip
    if down:
        time.sleep(1.0)
        server.stop()
        tried, since = len(attempts), time.monotonic()
        time.sleep(down)
        minutes = [0] * math.ceil(down / 60)
        for t in attempts[tried:]:
            minutes[min(int((t - since) // 60), len(minutes) - 1)] += 1
        print(f"{kind}: down {down:g} s: attempts in each minute: {minutes}")
    stop.set()
    reader.join(10)
    source.close()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=float, nargs="*", default=[3.0, 8.0, 25.0])
    parser.add_argument("--down", type=float, default=60.0, help="s left down at the end")
    parser.add_argument("--kinds", nargs="*", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("--old", action="store_true", help="the policy before the fix")
    args = parser.parse_args()
    if args.old:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"  # full probe
    configure_opencv()
    for kind in args.kinds:
        measure(kind, args.outages, args.down, args.old)


if __name__ == "__main__":
    main()
