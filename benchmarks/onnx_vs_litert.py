"""LiteRT against ONNX Runtime on the same network, measured in one run.

The network is the shared uint8 MobileNetV2 (`mobilenet_v2_1.0_224_quant.tflite`), run by
LiteRT as it is, and by ONNX Runtime after tflite2onnx and onnxruntime's static int8
quantization calibrated on frames of the shared clips (tests/onnx_models.py); the float ONNX
graph (the same weights, no activation quantization) is a reference row.

1. Top-1 agreement with LiteRT: on the shared photos and on every 10th frame of the clips.
2. Latency per core: one thread, one preprocessed frame, invoke() alone (median of N), and
   what the NCHW transpose in the ONNX backend's invoke() costs.
3. Through the pipeline: `camapp run --source memory:CLIP --loop` with `--workers` (default:
   the cores), a private mosquitto, counted by `mosquitto_sub`: classifications/s and camapp's
   CPU ms per classification in the steady state, and the process's peak RSS (VmHWM).
   Rounds alternate the runtimes and the medians are reported, so load from other processes
   falls on each alike.

    python benchmarks/onnx_vs_litert.py [--seconds 15] [--rounds 3] [--calibration 48]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from camapp.bench.broker import Broker  # noqa: E402
from camapp.bench.harness import Receiver, _proc_cpu_s, say  # noqa: E402
from camapp.capture.opencv import FileSource  # noqa: E402
from camapp.inference import loader  # noqa: E402
from camapp.inference.classifier import Classifier  # noqa: E402
from tests import onnx_models  # noqa: E402

MEDIA = REPO.parent / "shared" / "media"
LABELS = REPO.parent / "shared" / "models" / "imagenet_labels.txt"
PHOTOS = sorted(p for p in MEDIA.iterdir() if p.suffix in (".jpg", ".png", ".bmp"))
CLIP = MEDIA / "car-detection.mp4"


def classifier(model: Path) -> Classifier:
    """One single-threaded classifier; the backend follows the file (.tflite, .onnx)."""
    return loader.load(loader.plan(str(model), str(LABELS), top_k=1))


def clip_frames(every: int = 10) -> list[np.ndarray]:
    frames = []
    for clip in onnx_models.CLIPS:
        source = FileSource(clip, realtime=False)
        try:
            while (frame := source.read()) is not None:
                if frame.seq % every == 0:
                    frames.append(frame.image)
        finally:
            source.close()
    return frames


def top1(model: Path, images: list[np.ndarray]) -> list[int]:
    c = classifier(model)
    return [c.classify(image, bgr=True).top_k[0].class_id for image in images]


def agreement(reference: list[int], other: list[int]) -> str:
    same = sum(a == b for a, b in zip(reference, other, strict=True))
    return f"{same}/{len(reference)} ({100 * same / len(reference):.0f}%)"


def latency_ms(model: Path, image: np.ndarray, runs: int = 200) -> float:
    """Median invoke() time on one thread, the frame preprocessed once."""
    c = classifier(model)
    c.preprocess(image, True, c.backend.input_tensor()[0])
    for _ in range(20):
        c.backend.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        c.backend.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def transpose_ms(model: Path, runs: int = 2000) -> float:
    """What the ONNX backend's HWC -> NCHW copy costs per frame."""
    backend = classifier(model).backend
    hwc, nchw = backend._hwc, backend._nchw  # the private step, measured alone
    start = time.perf_counter()
    for _ in range(runs):
        np.copyto(nchw, hwc.transpose(0, 3, 1, 2))
    return (time.perf_counter() - start) / runs * 1000


@dataclass
class Run:
    rate: float  # classifications/s in the steady state
    cpu_ms: float  # camapp's CPU per classification in the steady state
    rss_mb: float  # peak RSS (VmHWM)


def pipeline(model: Path, seconds: float, workers: int, workdir: Path) -> Run:
    """`camapp run` on frames held in memory, through a private mosquitto."""
    broker = Broker(workdir).start()
    receiver = Receiver(broker.port, "camapp/bench/classification", workdir)
    try:
        command = [sys.executable, "-m", "camapp", "run", "--source", f"memory:{CLIP}", "--loop",
                   "--model", str(model), "--labels", str(LABELS), "--camera-id", "bench",
                   "--workers", str(workers), "--duration", str(seconds),
                   "--mqtt-port", str(broker.port)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples, peak = watch(proc)
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"camapp run failed: {err.decode()[-500:]}")
        time.sleep(0.5)
        arrivals = [t for t, _, _ in receiver.received]
    finally:
        receiver.close()
        broker.stop()
    # The steady state: from the 20th message on, so start-up (loading, decoding) is left out.
    steady = arrivals[20:]
    if len(steady) < 2:
        raise SystemExit(f"camapp run published only {len(arrivals)} classifications")
    done, span = len(steady) - 1, steady[-1] - steady[0]
    cpu = cpu_at(samples, steady[-1]) - cpu_at(samples, steady[0])
    return Run(done / span, cpu / done * 1000, peak)


def watch(proc: subprocess.Popen[bytes]) -> tuple[list[tuple[float, float]], float]:
    """(monotonic time, CPU seconds) every 50 ms while `proc` runs, and its peak RSS (MB)."""
    samples, peak = [], 0.0
    while proc.poll() is None:
        try:
            samples.append((time.monotonic(), _proc_cpu_s(proc.pid)))
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM"))
            peak = max(peak, int(hwm.split()[1]) / 1024)
        except (OSError, StopIteration, ValueError):
            pass
        time.sleep(0.05)
    return samples, peak


def cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    earlier = [cpu for t, cpu in samples if t <= when]
    return earlier[-1] if earlier else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=48, help="calibration frames")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="keep the ONNX models here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        say(f"converting and quantizing ({args.calibration} calibration frames)")
        onnx = onnx_models.mobilenet(out, args.calibration)
        models = {"LiteRT uint8": onnx_models.TFLITE, "ORT int8": onnx["int8"],
                  "ORT float": onnx["float"]}  # fmt: skip
        report(models, args, Path(tmp))


def report(models: dict[str, Path], args: argparse.Namespace, workdir: Path) -> None:
    say("top-1 on the photos and clip frames")
    photos = [cv2.imread(str(p)) for p in PHOTOS]
    frames = clip_frames()
    answers = {name: (top1(m, photos), top1(m, frames)) for name, m in models.items()}
    ref_photos, ref_frames = answers["LiteRT uint8"]
    latency: dict[str, list[float]] = {name: [] for name in models}
    runs: dict[str, list[Run]] = {name: [] for name in models}
    for round_ in range(args.rounds):  # interleaved, so a busy moment hits every runtime
        for name, model in models.items():
            say(f"round {round_ + 1}/{args.rounds}: {name}, latency then {args.seconds:g} s run")
            latency[name].append(latency_ms(model, photos[0]))
            runs[name].append(pipeline(model, args.seconds, args.workers, workdir))
    print(f"\n{os.cpu_count()} cores, {args.workers} worker(s); medians of {args.rounds} "
          "interleaved rounds, one run of this script.\n")  # fmt: skip
    print("| runtime | file MB | top-1 = LiteRT, photos | top-1 = LiteRT, clip frames | "
          "ms per invoke (1 thread) | classifications/s (pipeline) | CPU ms per "
          "classification | peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, model in models.items():
        rows = runs[name]
        got_photos, got_frames = answers[name]
        print(
            f"| {name} | {model.stat().st_size / 1e6:.1f} | "
            f"{agreement(ref_photos, got_photos)} | {agreement(ref_frames, got_frames)} | "
            f"{statistics.median(latency[name]):.2f} | "
            f"{statistics.median(r.rate for r in rows):.0f} | "
            f"{statistics.median(r.cpu_ms for r in rows):.2f} | "
            f"{max(r.rss_mb for r in rows):.0f} |"
        )
    copy_ms = transpose_ms(models["ORT int8"])
    print(f"\nNCHW transpose in the ONNX backend's invoke: {copy_ms:.3f} ms")


if __name__ == "__main__":
    main()
