"""Two cameras in one process, measured: delivery, fairness, latency and memory.

1. Every frame: the two shared clips (`car-detection.mp4`, `one-by-one-person-detection.mp4`)
   as two cameras of one `camapp run` (`realtime = false`, `drop = false`): each camera's
   `classification` topic must carry every frame, in order.
2. A fast replay beside a paced camera: one camera unthrottled (a looping replay), the other
   at its clip's pace (10 fps). The paced camera must keep its pace, and its p99 latency must
   stay within 2x of the same camera running alone.
3. Peak RSS: the two cameras in one process against two processes, one camera each.

    python benchmarks/two_cameras.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from camapp.bench.broker import Broker
from camapp.bench.harness import Receiver, say

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
CLIPS = {"lot": MEDIA / "car-detection.mp4", "room": MEDIA / "one-by-one-person-detection.mp4"}
FRAMES = {"lot": 377, "room": 1394}


def config(path: Path, port: int, cameras: dict[str, dict], top: str = "") -> Path:
    entries = "".join(
        f'[[cameras]]\ncamera_id = "{cid}"\nsource = "{CLIPS[cid]}"\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
        for cid, extra in cameras.items()
    )
    path.write_text(f'{top}\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n{entries}')
    return path


def run(conf: Path, seconds: float | None = None) -> tuple[int, float]:
    """Run camapp to its end (or for `seconds`); return its exit code and peak RSS (MB)."""
    command = [sys.executable, "-m", "camapp", "run", "--config", str(conf)]
    if seconds:
        command += ["--duration", str(seconds)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM"))
            peak = max(peak, int(hwm.split()[1]) / 1024)
        except (OSError, StopIteration):
            pass
        time.sleep(0.05)
    _, err = proc.communicate()
    if proc.returncode:
        say(err.decode()[-400:])
    return proc.returncode, peak


def received(receiver: Receiver) -> list[dict]:
    return [json.loads(payload) for _, _, payload in receiver.received]


def every_frame(broker: Broker, tmp: Path) -> None:
    receivers = {c: Receiver(broker.port, f"camapp/{c}/classification", tmp / c) for c in CLIPS}
    replay = "realtime = false\ndrop = false"
    conf = config(tmp / "all.toml", broker.port, {c: {} for c in CLIPS}, replay)
    started = time.monotonic()
    code, peak = run(conf)
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    for camera, receiver in receivers.items():
        frames = [m["frame"] for m in received(receiver)]
        ok = frames == list(range(FRAMES[camera]))
        say(f"every frame: {camera}: {len(frames)}/{FRAMES[camera]} in order: {ok}")
        receiver.close()
    total = sum(FRAMES.values())
    say(f"every frame: exit {code}, {total} frames in {elapsed:.1f} s, peak RSS {peak:.0f} MB")


def paced_beside_fast(broker: Broker, tmp: Path, seconds: float) -> None:
    paced = {"realtime": True}
    fast = {"realtime": False, "drop": False, "loop": True}
    results = {}
    for label, cameras in (
        ("alone", {"room": paced}),
        ("beside a fast replay", {"room": paced, "lot": fast}),
    ):
        work = tmp / label.replace(" ", "_")
        receiver = Receiver(broker.port, "camapp/room/classification", work)
        other = Receiver(broker.port, "camapp/lot/classification", work / "lot")
        run(config(tmp / "p.toml", broker.port, cameras), seconds)
        time.sleep(0.5)
        messages = received(receiver)
        latencies = sorted(m["latency_ms"] for m in messages)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        rate = len(messages) / seconds
        lot = len(received(other)) / seconds
        results[label] = p99
        say(f"paced camera {label}: {rate:.1f} classified/s (clip: 10 fps), "
            f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms; "
            f"fast replay beside it: {lot:.1f}/s")  # fmt: skip
        receiver.close()
        other.close()
    ratio = results["beside a fast replay"] / results["alone"]
    say(f"paced camera p99 beside a fast replay / alone: {ratio:.2f} (target ≤ 2)")


def fair_share(broker: Broker, tmp: Path, seconds: float) -> None:
    """Both cameras want more than the pool can give: each must get within 10 % of half."""
    fast = {"realtime": False, "drop": False, "loop": True}
    work = tmp / "fair"
    receivers = {c: Receiver(broker.port, f"camapp/{c}/classification", work / c) for c in CLIPS}
    run(config(tmp / "fair.toml", broker.port, {c: fast for c in CLIPS}), seconds)
    time.sleep(0.5)
    counts = {c: len(r.received) for c, r in receivers.items()}
    for receiver in receivers.values():
        receiver.close()
    share = {c: n / max(sum(counts.values()), 1) for c, n in counts.items()}
    say(
        "fair share, both unthrottled: "
        + ", ".join(f"{c} {n} classifications ({share[c]:.1%})" for c, n in counts.items())
        + f"; the larger share is {max(share.values()) / 0.5:.3f}x an equal one (target ≤ 1.1)"
    )


def memory(broker: Broker, tmp: Path, seconds: float) -> None:
    paced = {"realtime": True, "loop": True}
    _, both = run(config(tmp / "both.toml", broker.port, {c: paced for c in CLIPS}), seconds)
    # Each alone has its own default client id (camapp-<camera_id>): no session taken over.
    apart = [run(config(tmp / f"{c}.toml", broker.port, {c: paced}), seconds)[1] for c in CLIPS]
    say(f"peak RSS: two cameras in one process {both:.0f} MB; two processes "
        f"{apart[0]:.0f} + {apart[1]:.0f} = {sum(apart):.0f} MB")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camapp-two-") as tmp_name:
        tmp = Path(tmp_name)
        for sub in (
            "lot",
            "room",
            "alone/lot",
            "beside_a_fast_replay/lot",
            "fair/lot",
            "fair/room",
        ):
            (tmp / sub).mkdir(parents=True)
        broker = Broker(tmp).start()
        try:
            every_frame(broker, tmp)
            paced_beside_fast(broker, tmp, args.seconds)
            fair_share(broker, tmp, args.seconds)
            memory(broker, tmp, args.seconds)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
