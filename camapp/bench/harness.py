"""`camapp bench`: how close camapp comes to the limit of the machine, measured in one run.

Every row uses the same machine, model and clip:

  limit WxT         the bare interpreter: invoke() on pre-decoded 224x224 frames, W
                    interpreters on W threads, T interpreter threads each
  naive             the tutorial loop: read, resize, invoke, argmax, one interpreter
  camapp            `camapp run --no-realtime`, counted by a subscriber through a private mosquitto
  camapp real-time  the same at the clip's own pace: latency from capture to receipt by the
                    subscriber, peak RSS, RSS growth, time to first classification

Decode and preprocessing are timed alone (CPU per frame). With the interpreter's CPU per invoke
they give `ideal` = cores ÷ (decode + preprocess + invoke CPU per frame): what the machine could
classify per second if camapp spent nothing anywhere else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from camapp import charts, models
from camapp.bench.broker import Broker
from camapp.capture.opencv import FileSource
from camapp.errors import CamappError, ConfigError, os_reason, shorten
from camapp.governor.sensors import machine_jiffies, process_jiffies
from camapp.inference import loader
from camapp.inference.backends.litert import interpreter_api
from camapp.inference.classifier import Classifier

log = logging.getLogger(__name__)

# The sample clip of a source checkout (built by `make setup`); an installed camapp has none.
PI_LIKE = "camapp, frames in memory"
CHECKOUT_CLIP = Path(__file__).resolve().parents[2] / "sample_videos" / "car-detection.mp4"
_TICK = os.sysconf("SC_CLK_TCK")

COLUMNS = (
    "run",
    "classifications/s",
    "CPU ms/classification",
    "vs ideal",
    "x naive",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "peak RSS MB",
    "RSS growth MB",
    "first classification s",
)


@dataclass
class Plan:
    """What to measure, and for how long."""

    clip: Path
    model: str | None
    workers: int
    threads: int
    cores: int
    limit_s: float = 3.0  # per limit row
    naive_frames: int | None = None  # None: the whole clip
    run_s: float = 10.0  # camapp --no-realtime
    realtime_s: float = 20.0  # camapp at the clip's pace
    warmup_s: float = 5.0  # RSS growth is counted from this long after the first classification
    frames: int | None = None  # decode and preprocess only this many (None: the whole clip)
    rounds: int = 3  # full-speed rows, each measured this often; the report gives medians


@dataclass
class Row:
    name: str
    rate: float  # classifications/s
    cpu_ms: float  # CPU ms per classification
    p50: float | None = None  # latency ms, capture -> receipt by the subscriber
    p95: float | None = None
    p99: float | None = None
    peak_rss_mb: float | None = None
    # At the largest RSS sampled: (total, anonymous, mapped from files). Anonymous is what
    # camapp allocates (heap, frames, arenas); file pages are library code and the model,
    # which the kernel can drop and read again.
    rss_split_mb: tuple[float, float, float] | None = None
    rss_growth_mb: float | None = None
    first_s: float | None = None  # process start -> first classification received
    seconds: float = 0.0  # how long the row was measured
    load: Load | None = None  # who used the cores while camapp ran


@dataclass
class Load:
    """CPU use while camapp ran: the broker and subscriber share its cores, and on a shared
    machine other processes do too, which the throughput figures cannot tell apart."""

    camapp_cores: float
    broker_ms: float  # mosquitto CPU per message
    subscriber_ms: float  # mosquitto_sub and this process (sampling): CPU per message
    other_cores: float  # everything else on the machine


@dataclass
class Cameras:
    """N cameras of frames in memory in one process, sharing its workers."""

    cameras: int
    rate: float  # classifications/s, all cameras together
    cpu_ms: float  # CPU ms per classification
    shares: list[float]  # each camera's classifications ÷ an equal share (1.0: equal)

    @property
    def spread(self) -> float:
        """How far the least and most served cameras are from an equal share (0.1: 10 %)."""
        return max(abs(share - 1) for share in self.shares)


@dataclass
class Report:
    clip: str
    model: str
    cores: int
    workers: int
    threads: int
    frames: int
    decode_ms: float
    preprocess_ms: float
    invoke_ms: float  # CPU per invoke with camapp's WxT
    inference_ms: float = 0.0  # median `inference_ms` camapp reported at real-time pace
    rows: list[Row] = field(default_factory=list)
    # (x ideal, x naive) of camapp in each round, against that round's own ideal and naive
    by_round: list[tuple[float, float]] = field(default_factory=list)
    cameras: list[Cameras] = field(default_factory=list)
    gil_ms: float | None = None  # GIL held per classification, frames in memory (py-spy)
    when: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M %Z"))

    @property
    def ideal(self) -> float:
        return self.cores * 1000 / (self.decode_ms + self.preprocess_ms + self.invoke_ms)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    @property
    def bare_invoke_ms(self) -> float:
        """CPU per invoke of the W single-threaded interpreters: the frames-in-memory limit."""
        return self.row(f"limit {self.workers}x1").cpu_ms

    def fixed_ms(self) -> tuple[float, float]:
        """camapp's CPU per classification beyond what the machine must do anyway: (the file
        row, beyond decode + preprocess + invoke; frames in memory, beyond invoke, its
        preprocessing being one copy of the model-sized crop)."""
        per_frame = self.decode_ms + self.preprocess_ms + self.invoke_ms
        return self.row("camapp").cpu_ms - per_frame, self.row(PI_LIKE).cpu_ms - self.bare_invoke_ms

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, met); met is None for a target this run was too short for."""
        run, live, naive = self.row("camapp"), self.row("camapp real-time"), self.row("naive")
        vs_ideal, vs_naive = run.rate / self.ideal, run.rate / naive.rate
        p50_max, p99_max = self.inference_ms + 5, 3 * self.inference_ms + 10
        p50, p99 = live.p50 or float("nan"), live.p99 or float("nan")
        peak = max(run.peak_rss_mb or 0, live.peak_rss_mb or 0)
        growth = live.rss_growth_mb
        first = max(run.first_s or 0, live.first_s or 0)
        pi_like, bare = self.row(PI_LIKE), self.row(f"limit {self.workers}x1")
        vs_bare, fixed = pi_like.rate / bare.rate, self.fixed_ms()[1]
        most = max(self.cameras, key=lambda c: c.cameras, default=None)
        return [
            ("frames in memory ≥ 0.93 x bare interpreters", f"{vs_bare:.2f} x", vs_bare >= 0.93),
            ("fixed cost, frames in memory ≤ 0.3 ms", f"{fixed:.3f} ms", fixed <= 0.3),
            ("throughput ≥ 0.88 x ideal", f"{vs_ideal:.2f} x ideal", vs_ideal >= 0.88),
            ("throughput ≥ 1.8 x naive", f"{vs_naive:.2f} x naive", vs_naive >= 1.8),
            (
                "8 cameras within 10 % of equal shares",
                f"{most.cameras} cameras: {most.spread:.1%}" if most else "—",
                most.spread <= 0.1 if most and most.cameras >= 8 else None,
            ),
            (f"p50 ≤ inference + 5 = {p50_max:.1f} ms", f"{p50:.1f} ms", p50 <= p50_max),
            (f"p99 ≤ 3 x inference + 10 = {p99_max:.1f} ms", f"{p99:.1f} ms", p99 <= p99_max),
            ("peak RSS ≤ 200 MB", f"{peak:.0f} MB", peak <= 200),
            (
                "RSS growth < 5 MB over 10 min",
                f"{_fmt(growth, '+.1f')} MB over {live.seconds:.0f} s",
                (growth is not None and growth < 5) if live.seconds >= 540 else None,
            ),
            ("first classification < 2 s", f"{first:.2f} s", first < 2),
        ]


def default_clip() -> Path:
    """The checkout's sample clip; from an installed camapp, the user names one."""
    if not CHECKOUT_CLIP.is_file():
        raise ConfigError("no sample clip here (not a source checkout): pass --clip VIDEO")
    return CHECKOUT_CLIP


def say(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(f"camapp bench: {message}", file=sys.stderr, flush=True)


def quick(plan: Plan) -> Plan:
    """A smoke test of every row in a few seconds: the figures are too short to trust."""
    return replace(
        plan,
        limit_s=0.3,
        naive_frames=30,
        run_s=1.5,
        realtime_s=2.0,
        warmup_s=0.0,
        frames=60,
        rounds=1,
    )


# --- decode and preprocessing alone ---------------------------------------------------------


def decode_and_preprocess(
    clip: Path, classifier: Classifier, limit: int | None
) -> tuple[list[np.ndarray], float, float]:
    """Decode the clip with camapp's own source and preprocess each frame with camapp's own
    preprocessor, timing each alone in process CPU time (FFmpeg and OpenCV have threads of
    their own). Returns the model inputs and the CPU ms per frame of each stage."""
    source = FileSource(clip, realtime=False)
    inputs: list[np.ndarray] = []
    decode = preprocess = 0.0
    try:
        while limit is None or len(inputs) < limit:
            t0 = time.process_time()
            frame = source.read()
            t1 = time.process_time()
            if frame is None:
                break
            spec = classifier.preprocess.spec
            out = np.empty((spec.height, spec.width, 3), spec.dtype)
            t2 = time.process_time()
            classifier.preprocess(frame.image, frame.bgr, out)
            preprocess += time.process_time() - t2
            decode += t1 - t0
            inputs.append(out)
    finally:
        source.close()
    return inputs, decode * 1000 / len(inputs), preprocess * 1000 / len(inputs)


# --- the limit: the bare interpreter ----------------------------------------------------------


def bare_limit(
    model_path: Path, inputs: list[np.ndarray], workers: int, threads: int, seconds: float
) -> Row:
    """W interpreters on W threads invoking as fast as they can on ready model inputs."""
    interpreter_cls, _ = interpreter_api()
    interpreters = []
    for _ in range(workers):
        interp = interpreter_cls(model_path=str(model_path), num_threads=threads)
        interp.allocate_tensors()
        interp.invoke()  # the first invoke sets up XNNPACK: not part of the steady state
        interpreters.append(interp)
    counts = [0] * workers
    go = threading.Barrier(workers + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        interp = interpreters[i]
        index = interp.get_input_details()[0]["index"]
        go.wait()
        n = 0
        while not stop.is_set():
            interp.set_tensor(index, inputs[n % len(inputs)][np.newaxis])
            interp.invoke()
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    go.wait()
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    total = sum(counts)
    return Row(f"limit {workers}x{threads}", total / wall, cpu * 1000 / total, seconds=wall)


# --- the naive tutorial loop ------------------------------------------------------------------


def naive_loop(clip: Path, model_path: Path, max_frames: int | None) -> Row:
    """What a tutorial does: one interpreter, read, resize, invoke, argmax, one frame at a time."""
    interpreter_cls, _ = interpreter_api()
    interpreter = interpreter_cls(model_path=str(model_path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    size = (int(inp["shape"][2]), int(inp["shape"][1]))
    cap = cv2.VideoCapture(str(clip))
    n = 0
    c0, w0 = time.process_time(), time.perf_counter()
    while max_frames is None or n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(cv2.resize(frame, size), cv2.COLOR_BGR2RGB)
        interpreter.set_tensor(inp["index"], np.expand_dims(rgb, 0).astype(inp["dtype"]))
        interpreter.invoke()
        int(np.argmax(interpreter.get_tensor(out["index"])[0]))
        n += 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    cap.release()
    return Row("naive", n / wall, cpu * 1000 / n, seconds=wall)


# --- camapp itself, through a real broker -----------------------------------------------------


class Receiver:
    """`mosquitto_sub` subscribed to camapp's classifications, noting when each arrives.

    A C subscriber, like the Home Assistant or Node-RED on another machine it stands for,
    costs about a fifth of the CPU per message of a Python one: on a 2-core machine the
    instrument would otherwise take 3% of the cores it measures. Its CPU is still counted
    (`Load.subscriber_ms`).
    """

    def __init__(self, port: int, topic: str, workdir: Path, also: tuple[str, ...] = ()) -> None:
        binary = shutil.which("mosquitto_sub")
        if binary is None:
            raise ConfigError("mosquitto_sub is not installed: run `make setup`, which installs it")
        self._out = workdir / "received.txt"
        self._topics = {t.encode() for t in (topic, *also)}
        probe = f"{topic}/probe"
        subscriptions = [arg for t in (topic, *also, probe) for arg in ("-t", t)]
        with self._out.open("wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-h", "127.0.0.1", "-p", str(port), *subscriptions, "-v",
                 "-F", "%U %t %p"],
                stdout=out, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            self._await_subscription(port, probe)
        except BaseException:
            self.close()
            raise

    def _await_subscription(self, port: int, probe: str) -> None:
        """Publish probes until one comes back: only then is the subscription in place."""
        prober = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        try:
            prober.connect("127.0.0.1", port, keepalive=30)
        except OSError as exc:  # the broker died: a runtime failure, not the user's input
            raise CamappError(f"benchmark broker unreachable: {os_reason(exc)}") from None
        prober.loop_start()
        try:
            deadline = time.monotonic() + 10
            while probe.encode() not in self._out.read_bytes():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise CamappError("benchmark subscriber could not subscribe")
                prober.publish(probe, b"")
                time.sleep(0.05)
        finally:
            prober.disconnect()
            prober.loop_stop()

    @property
    def received(self) -> list[tuple[float, float, bytes]]:
        """(monotonic, unix time, payload) of each classification, in order of arrival."""
        return [(mono, wall, payload) for mono, wall, payload, _ in self._lines()]

    def by_topic(self, start: float, end: float) -> dict[str, int]:
        """Classifications received on each topic between two monotonic times."""
        counts = dict.fromkeys(sorted(t.decode() for t in self._topics), 0)
        for mono, _, _, topic in self._lines():
            if start < mono <= end:
                counts[topic.decode()] += 1
        return counts

    def _lines(self) -> list[tuple[float, float, bytes, bytes]]:
        offset = time.time() - time.monotonic()
        messages = []
        for line in self._out.read_bytes().splitlines():
            stamp, topic, payload = line.split(b" ", 2)
            if topic in self._topics:
                wall = float(stamp)
                messages.append((wall - offset, wall, payload, topic))
        return messages

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/stat") as f:
        return process_jiffies(f.read()) / _TICK


def _machine_busy_s() -> float:
    """CPU seconds every core spent not idle since boot (steal included: lost to other VMs)."""
    with open("/proc/stat") as f:
        total, idle = machine_jiffies(f.read())
    return (total - idle) / _TICK


@dataclass
class _Sample:
    t: float  # monotonic
    rss_mb: float
    peak_mb: float  # VmHWM: the high-water mark of RSS since the exec
    anon_mb: float  # RssAnon: the part of RSS not backed by a file
    file_mb: float  # RssFile: pages mapped from files (libraries, the model)
    camapp_s: float  # CPU seconds so far: camapp, the broker, the subscriber and this process
    broker_s: float
    bench_s: float
    busy_s: float


def _proc_memory_mb(pid: int) -> tuple[float, ...]:
    """RSS, its high-water mark, and RSS's anonymous and file-backed parts, read together.
    Not the child's ru_maxrss: that also counts the parent's RSS, which the child shares
    between fork and exec."""
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if line.startswith(keys))
    return tuple(int(fields[key].split()[0]) / 1024 for key in keys)


def _sample(pid: int, broker_pid: int | None, subscriber_pid: int) -> _Sample:
    return _Sample(
        time.monotonic(),
        *_proc_memory_mb(pid),
        _proc_cpu_s(pid),
        _proc_cpu_s(broker_pid) if broker_pid else 0.0,
        _proc_cpu_s(subscriber_pid) + time.process_time(),
        _machine_busy_s(),
    )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _watch(
    proc: subprocess.Popen[bytes], broker_pid: int | None, subscriber_pid: int, timeout: float
) -> list[_Sample]:
    """Sample the child every 0.1 s until it exits."""
    samples: list[_Sample] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                return samples
            if time.monotonic() > deadline:
                raise CamappError(f"camapp run did not finish within {timeout:.0f} s")
            # It exited between poll() and the read: /proc is gone (OSError) or holds a zombie,
            # which has no memory lines (KeyError). The loop ends next time.
            with contextlib.suppress(OSError, KeyError):
                samples.append(_sample(proc.pid, broker_pid, subscriber_pid))
            time.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()


def camapp_command(
    plan: Plan,
    model_path: Path,
    broker: Broker,
    realtime: bool,
    seconds: float,
    cameras: list[tuple[str, str]],
    workdir: Path,
) -> list[str]:
    """`camapp run` as the bench runs it, for (camera id, source) pairs: one camera by its
    flags, several from a config file's `[[cameras]]` (the flags apply to each)."""
    command = [
        sys.executable, "-m", "camapp", "run", "--loop", "--duration", str(seconds),
        "--model", str(model_path),
        "--workers", str(plan.workers), "--threads-per-worker", str(plan.threads),
        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
    ]  # fmt: skip
    if not realtime:
        command.append("--no-realtime")
    if len(cameras) == 1:
        return [*command, "--camera-id", cameras[0][0], "--source", cameras[0][1]]
    config = workdir / "cameras.toml"
    config.write_text(
        "".join(f"[[cameras]]\ncamera_id = {json.dumps(c)}\nsource = {json.dumps(s)}\n"
                for c, s in cameras)
    )  # fmt: skip
    return [*command, "--config", str(config)]


def run_camapp(
    name: str,
    plan: Plan,
    model_path: Path,
    broker: Broker,
    realtime: bool,
    seconds: float,
    source: str | None = None,
    cameras: int = 1,
    topic: str = "classification",
) -> tuple[Row, list[float], dict[str, int]]:
    """Run the real `camapp run` in a child process and measure it from outside, as a user
    would see it, with `cameras` cameras of the same source. Returns the row, the
    inference_ms camapp reported per message, and the classifications each camera's topic
    received while the row was measured. A detector's frames are counted on `objects`
    (`topic`), whose messages carry no inference_ms."""
    ids = [f"bench{os.getpid()}" + (f"c{n}" if cameras > 1 else "") for n in range(cameras)]
    topics = [f"camapp/{camera}/{topic}" for camera in ids]
    with tempfile.TemporaryDirectory(prefix="camapp-bench-") as tmp:
        pairs = [(camera, source or str(plan.clip)) for camera in ids]
        command = camapp_command(plan, model_path, broker, realtime, seconds, pairs, Path(tmp))
        receiver = Receiver(broker.port, topics[0], Path(tmp), tuple(topics[1:]))
        try:
            with (Path(tmp) / "stderr.txt").open("w+") as stderr:
                start = time.monotonic()
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
                broker_pid = broker.proc.pid if broker.proc else None
                samples = _watch(proc, broker_pid, receiver.proc.pid, seconds + 60)
                stderr.seek(0)
                err = stderr.read()
            time.sleep(0.2)  # the last messages may still be on their way from the broker
            if receiver.proc.poll() is not None:
                raise CamappError("the benchmark subscriber exited during the run")
        finally:
            receiver.close()
        received = receiver.received
        if proc.returncode != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit code {proc.returncode}"
            raise CamappError(f"camapp run failed: {last}")
        row, messages = _measured(name, plan, samples, received, start)
        shares = receiver.by_topic(received[0][0] + row.seconds / 10, received[-1][0])
    return row, [m["inference_ms"] for m in messages if "inference_ms" in m], shares


def _measured(
    name: str, plan: Plan, samples: list[_Sample], received: list, start: float
) -> tuple[Row, list[dict]]:
    """The row, from the samples taken outside camapp and the messages it published."""
    if len(samples) < 2:
        raise CamappError("camapp run ended before it could be measured")
    if len(received) < 2:
        raise CamappError(f"camapp run: only {len(received)} classifications received")
    first, last = received[0][0], received[-1][0]
    # CPU between the samples that bracket the messages: neither start-up nor shutdown.
    window = [s for s in samples if first <= s.t <= last] or samples[-2:]
    a, b = window[0], window[-1]
    counted = sum(1 for t, _, _ in received if a.t < t <= b.t) or 1
    load = _load(a, b, counted)
    messages = [json.loads(payload) for _, _, payload in received]
    latencies = [
        (wall - m["ts"]) * 1000 for (_, wall, _), m in zip(received, messages, strict=True)
    ]
    # Growth while classifying: from the end of the warm-up to the last message, not shutdown.
    # (A soak's long warm-up must not leave the short full-speed run without samples.)
    warmup = min(plan.warmup_s, (last - first) / 2)
    steady = [s.rss_mb for s in samples if first + warmup <= s.t <= last]
    row = Row(
        name,
        rate=(len(received) - 1) / (last - first),
        cpu_ms=(b.camapp_s - a.camapp_s) * 1000 / counted,
        p50=_percentile(latencies, 50),
        p95=_percentile(latencies, 95),
        p99=_percentile(latencies, 99),
        peak_rss_mb=max(s.peak_mb for s in samples),
        rss_split_mb=max((s.rss_mb, s.anon_mb, s.file_mb) for s in samples),
        rss_growth_mb=steady[-1] - steady[0] if steady else None,
        first_s=first - start,
        seconds=last - first,
        load=load,
    )
    return row, messages


def _load(a: _Sample, b: _Sample, counted: int) -> Load:
    """Who used the cores between two samples, per second and per message."""
    span = (b.t - a.t) or 1.0
    others = (b.busy_s - a.busy_s) - (b.camapp_s - a.camapp_s) - (b.broker_s - a.broker_s)
    return Load(
        camapp_cores=(b.camapp_s - a.camapp_s) / span,
        broker_ms=(b.broker_s - a.broker_s) * 1000 / counted,
        subscriber_ms=(b.bench_s - a.bench_s) * 1000 / counted,
        other_cores=max(0.0, others - (b.bench_s - a.bench_s)) / span,
    )


# --- the whole run ----------------------------------------------------------------------------


@dataclass
class _Round:
    decode_ms: float
    preprocess_ms: float
    frames: int
    rows: list[Row]


def _round(plan: Plan, model_path: Path, broker: Broker, say_step: Callable[[str], None]) -> _Round:
    """Every full-speed row once, back to back, so that they see the host alike."""
    say_step(f"decode and preprocess {plan.clip.name} alone")
    inputs, decode_ms, preprocess_ms = decode_and_preprocess(
        plan.clip, loader.load(loader.plan(str(model_path))), plan.frames
    )
    say(
        f"      {len(inputs)} frames, CPU/frame: decode {decode_ms:.3f} ms,"
        f" preprocess {preprocess_ms:.3f} ms"
    )
    rows = []
    for workers, threads in limit_configs(plan):
        say_step(f"bare interpreter, {workers}x{threads}, {plan.limit_s:g} s")
        rows.append(bare_limit(model_path, inputs, workers, threads, plan.limit_s))
        say(f"      {rows[-1].rate:.1f}/s, {rows[-1].cpu_ms:.3f} CPU ms/invoke")
    frames = len(inputs)
    del inputs
    say_step("naive tutorial loop")
    rows.append(naive_loop(plan.clip, model_path, plan.naive_frames))
    say(f"      {rows[-1].rate:.1f}/s")
    say_step(f"camapp run --no-realtime, {plan.run_s:g} s")
    row, _, _ = run_camapp("camapp", plan, model_path, broker, False, plan.run_s)
    rows.append(row)
    say(f"      {row.rate:.1f}/s, {row.cpu_ms:.3f} CPU ms/classification")
    # A Pi camera's ISP hands over frames already scaled: no decode, no big resize. Frames
    # held in memory stand in for it, so the limit is the bare interpreters alone.
    say_step(f"camapp run on frames in memory (Pi-like), {plan.run_s:g} s")
    memory = f"memory:{plan.clip}"
    row, _, _ = run_camapp(PI_LIKE, plan, model_path, broker, False, plan.run_s, memory)
    rows.append(row)
    say(f"      {row.rate:.1f}/s, {row.cpu_ms:.3f} CPU ms/classification")
    return _Round(decode_ms, preprocess_ms, frames, rows)


CAMERA_COUNTS = (1, 2, 4, 8)
GIL_RATE = 500  # py-spy samples per second


def camera_rows(
    plan: Plan, model_path: Path, broker: Broker, say_step: Callable[[str], None]
) -> list[Cameras]:
    """1, 2, 4 and 8 cameras of frames in memory in one process: the throughput of them all,
    and each camera's share of it (the hub's round-robin should make them equal)."""
    rows = []
    for count in CAMERA_COUNTS:
        say_step(f"{count} cameras of frames in memory in one process, {plan.run_s:g} s")
        name, memory = f"{count} cameras", f"memory:{plan.clip}"
        row, _, counts = run_camapp(
            name, plan, model_path, broker, False, plan.run_s, memory, count
        )
        total = sum(counts.values()) or 1
        shares = [n * count / total for n in counts.values()]
        rows.append(Cameras(count, row.rate, row.cpu_ms, shares))
        say(f"      {row.rate:.1f}/s, shares {min(shares):.2f}-{max(shares):.2f} of equal")
    return rows


def gil_held(plan: Plan, model_path: Path, broker: Broker, seconds: float) -> float | None:
    """ms per classification that camapp's threads hold the GIL, frames in memory: py-spy
    samples the thread holding it (`--gil`, without pausing camapp) in a run of its own.
    The main thread (start-up, shutdown) is left out. None without py-spy."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        log.warning("py-spy is not installed (pip install 'camapp[bench]'): GIL not measured")
        return None
    camera = f"bench{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="camapp-bench-") as tmp:
        pairs = [(camera, f"memory:{plan.clip}")]
        command = camapp_command(plan, model_path, broker, False, seconds, pairs, Path(tmp))
        profile = Path(tmp) / "gil.txt"
        receiver = Receiver(broker.port, f"camapp/{camera}/classification", Path(tmp))
        try:
            spied = subprocess.run(
                [spy, "record", "--gil", "--nonblocking", "--rate", str(GIL_RATE),
                 "--format", "raw", "--output", str(profile), "--", *command],
                capture_output=True, timeout=seconds + 60,
            )  # fmt: skip
            time.sleep(0.2)  # the last messages may still be on their way from the broker
        finally:
            receiver.close()
        received = len(receiver.received)
        stacks = profile.read_text().splitlines() if profile.is_file() else []
    if spied.returncode != 0 or received < 2 or not stacks:
        log.warning("py-spy could not sample camapp (%s): GIL not measured", spied.returncode)
        return None
    held = sum(
        int(line.rpartition(" ")[2]) for line in stacks if line.startswith("Thread._bootstrap")
    )
    return held * 1000 / GIL_RATE / received


def _median_row(rows: list[Row]) -> Row:
    """The round with the median rate (the lower one of an even count), whole: its figures
    stay consistent with each other."""
    return sorted(rows, key=lambda r: r.rate)[(len(rows) - 1) // 2]


def run(plan: Plan, out_dir: Path) -> Report:
    """Measure every row, then write bench.md, bench.json and bench.png into `out_dir`."""
    if not plan.clip.is_file():
        raise ConfigError(f"clip not found: {plan.clip}")
    model_path = models.resolve_model(plan.model)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {shorten(out_dir)}: {os_reason(exc)}") from None
    steps = plan.rounds * (4 + len(limit_configs(plan))) + 3 + len(CAMERA_COUNTS)
    step = iter(range(1, steps + 1))

    def say_step(what: str) -> None:
        say(f"[{next(step)}/{steps}] {what}")

    rounds: list[_Round] = []
    with tempfile.TemporaryDirectory(prefix="camapp-bench-") as tmp:
        broker = Broker(Path(tmp)).start()
        try:
            for n in range(plan.rounds):
                if plan.rounds > 1:
                    say(f"round {n + 1}/{plan.rounds}")
                rounds.append(_round(plan, model_path, broker, say_step))
            say_step(f"camapp run at the clip's pace, {plan.realtime_s:g} s")
            live, inference, _ = run_camapp(
                "camapp real-time", plan, model_path, broker, True, plan.realtime_s
            )
            say(f"      p50 {live.p50:.1f} ms, p99 {live.p99:.1f} ms")
            cameras = camera_rows(plan, model_path, broker, say_step)
            say_step(f"GIL held per classification, frames in memory (py-spy), {plan.run_s:g} s")
            gil = gil_held(plan, model_path, broker, plan.run_s)
        finally:
            broker.stop()
    report = _report(plan, model_path, rounds, live, inference)
    report.cameras, report.gil_ms = cameras, gil
    say_step(f"writing {out_dir}")
    (out_dir / "bench.md").write_text(markdown(report))
    (out_dir / "bench.json").write_text(
        json.dumps(asdict(report) | {"ideal": report.ideal}, indent=2)
    )
    chart(report, out_dir / "bench.png")
    return report


def _report(
    plan: Plan, model_path: Path, rounds: list[_Round], live: Row, inference: list[float]
) -> Report:
    """The rounds' medians, with memory and start-up from the worst round."""
    names = [r.name for r in rounds[0].rows]
    rows = [_median_row([r.rows[i] for r in rounds]) for i in range(len(names))]
    limit, camapp = names.index(f"limit {plan.workers}x{plan.threads}"), names.index("camapp")
    # Memory and start-up are targets on their worst round, not on the median one.
    runs = [r.rows[camapp] for r in rounds]
    worst = max(runs, key=lambda r: r.peak_rss_mb or 0.0)
    rows[camapp] = replace(
        rows[camapp],
        peak_rss_mb=worst.peak_rss_mb,
        rss_split_mb=worst.rss_split_mb,
        first_s=max((r.first_s for r in runs if r.first_s is not None), default=None),
    )
    report = Report(
        str(plan.clip), models.display_name(model_path), plan.cores, plan.workers, plan.threads,
        rounds[0].frames,
        statistics.median(r.decode_ms for r in rounds),
        statistics.median(r.preprocess_ms for r in rounds),
        rows[limit].cpu_ms,
        inference_ms=statistics.median(inference),
        rows=[*rows, live],
    )  # fmt: skip
    for r in rounds:
        ideal = plan.cores * 1000 / (r.decode_ms + r.preprocess_ms + r.rows[limit].cpu_ms)
        run, naive = r.rows[camapp], r.rows[names.index("naive")]
        report.by_round.append((run.rate / ideal, run.rate / naive.rate))
    return report


def limit_configs(plan: Plan) -> list[tuple[int, int]]:
    """camapp's own WxT, one interpreter with one and with every core, and W single-threaded
    ones (the Pi-like row's limit), for comparison."""
    configs = [(1, 1), (1, plan.cores), (plan.workers, plan.threads), (plan.workers, 1)]
    return list(dict.fromkeys(configs))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(report: Report) -> str:
    """The report as Markdown: the set-up, the cost of each stage, the table, the targets."""
    naive = report.row("naive").rate
    per_frame = report.decode_ms + report.preprocess_ms + report.invoke_ms
    lines = [
        f"# camapp bench, {report.when}, {os.uname().nodename}",
        "",
        f"- clip: `{Path(report.clip).name}` ({report.frames} frames); model: `{report.model}`;"
        f" {report.cores} cores; camapp `--workers {report.workers}"
        f" --threads-per-worker {report.threads}`",
        f"- CPU per frame: decode {report.decode_ms:.3f} ms + preprocess"
        f" {report.preprocess_ms:.3f} ms + invoke {report.invoke_ms:.3f} ms"
        f" → ideal = {report.cores} ÷ {per_frame:.3f}"
        f" ms = **{report.ideal:.1f} classifications/s**",
        f"- inference_ms (median reported by camapp at real-time pace): {report.inference_ms:.2f}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in report.rows:
        cells = [
            r.name,
            f"{r.rate:.1f}",
            f"{r.cpu_ms:.3f}",
            f"{r.rate / report.ideal:.2f}",
            f"{r.rate / naive:.2f}",
            _fmt(r.p50, ".1f"),
            _fmt(r.p95, ".1f"),
            _fmt(r.p99, ".1f"),
            _fmt(r.peak_rss_mb, ".0f"),
            _fmt(r.rss_growth_mb, "+.1f"),
            _fmt(r.first_s, ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_fixed_cost(report), "", *_notes(report, naive), *_camera_table(report)]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    verdicts = {True: "yes", False: "**no**", None: "not measured (run --soak 600)"}
    lines += [f"| {t} | {m} | {verdicts[ok]} |" for t, m, ok in report.targets()]
    return "\n".join(lines) + "\n"


def _fixed_cost(report: Report) -> list[str]:
    """What camapp costs per classification beyond the work the machine must do anyway, and
    how long it holds the GIL, which bounds one process however many cores it has."""
    file_ms, memory_ms = report.fixed_ms()
    lines = [
        f"- **fixed cost** (camapp's CPU per classification beyond decode, preprocess and"
        f" invoke): **{file_ms:.3f} ms** from the file, **{memory_ms:.3f} ms** with frames in"
        f" memory (beyond invoke, {report.bare_invoke_ms:.3f} ms; their preprocessing is one copy"
        " of the crop)",
    ]
    if report.gil_ms is None:
        lines.append("- GIL held per classification: not measured (py-spy is not installed)")
    else:
        lines.append(
            f"- **GIL held per classification** (frames in memory, py-spy --gil):"
            f" **{report.gil_ms:.3f} ms**, so one process classifies at most"
            f" 1 ÷ GIL-held = {1000 / report.gil_ms:.0f}/s on any number of cores; the"
            f" interpreters here allow {report.cores} cores ÷ invoke"
            f" = {report.cores * 1000 / report.bare_invoke_ms:.0f}/s"
        )
    return lines


def _camera_table(report: Report) -> list[str]:
    """Several cameras of frames in memory in one process: throughput and fairness."""
    if not report.cameras:
        return []
    lines = [
        "",
        "| cameras in one process | classifications/s | CPU ms/classification"
        " | each camera's share of an equal one |",
        "|---|---|---|---|",
    ]
    for c in report.cameras:
        shares = " ".join(f"{share:.2f}" for share in c.shares)
        lines.append(f"| {c.cameras} | {c.rate:.1f} | {c.cpu_ms:.3f} | {shares} |")
    return lines


def _notes(report: Report, naive: float) -> list[str]:
    """What the table's figures rest on: who used the cores, memory, other load, rounds."""
    lines: list[str] = []
    for r in report.rows:
        if r.load:
            lines.append(
                f"- while `{r.name}` ran: camapp kept {r.load.camapp_cores:.2f} cores busy;"
                f" mosquitto {r.load.broker_ms:.3f} ms, the subscriber and this process (sampling)"
                f" {r.load.subscriber_ms:.3f} ms CPU per message; other processes"
                f" {r.load.other_cores:.2f} cores"
            )
    for r in report.rows:
        if r.rss_split_mb is not None:
            total, anon, files = r.rss_split_mb
            lines.append(
                f"- `{r.name}` memory: at its largest sampled RSS, {total:.0f} MB, {anon:.0f} MB"
                f" were anonymous (heap, frames, interpreters' arenas) and {files:.0f} MB pages"
                " of libraries and the model mapped from files"
            )
    run = report.row("camapp")
    if run.load and run.load.other_cores > 0.05:
        # Other processes took cores: what the CPU cost of camapp and of delivering its
        # messages (broker, subscriber) allows once they are gone.
        per_message = run.cpu_ms + run.load.broker_ms + run.load.subscriber_ms
        quiet = report.cores * 1000 / per_message
        lines.append(
            f"- other processes were busy: on a quiet machine camapp's CPU cost allows about"
            f" {quiet:.0f} classifications/s ({quiet / report.ideal:.2f} x ideal,"
            f" {quiet / naive:.2f} x naive); re-run there to confirm"
        )
    if len(report.by_round) > 1:
        lines.append(
            f"- medians of {len(report.by_round)} rounds (the real-time row: one run);"
            " camapp in each round against that round's ideal and naive: "
            + ", ".join(f"{i:.2f} x ideal / {n:.2f} x naive" for i, n in report.by_round)
        )
    return lines


def chart(report: Report, path: Path) -> None:
    """Throughput of every row against ideal, and latency percentiles against their targets."""
    plt = charts.pyplot()
    if plt is None:
        log.warning("matplotlib is not installed (pip install camapp[dev]): no chart")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(3, 1))
    rows = [r for r in report.rows if r.name != "camapp real-time"]
    bars = left.barh([r.name for r in rows], [r.rate for r in rows], color="tab:blue")
    left.bar_label(bars, fmt="%.0f", padding=3)
    naive = report.row("naive").rate
    left.axvline(1.6 * naive, color="tab:orange", linestyle="-.", label="1.6 x naive")
    left.axvline(report.ideal, color="black", linestyle="--", label=f"ideal {report.ideal:.0f}/s")
    left.axvline(0.85 * report.ideal, color="tab:red", linestyle=":", label="0.85 x ideal")
    left.set_xlabel("classifications/s")
    left.invert_yaxis()
    left.legend(loc="lower right")
    live = report.row("camapp real-time")
    names = ("p50", "p95", "p99")
    right.bar(names, [live.p50, live.p95, live.p99], color="tab:green")
    right.axhline(report.inference_ms + 5, color="tab:red", linestyle=":", label="p50 target")
    right.axhline(3 * report.inference_ms + 10, color="tab:red", linestyle="--", label="p99 target")
    right.set_ylabel("ms, capture → subscriber")
    right.set_title("latency at real-time pace")
    right.legend(loc="upper left")
    fig.suptitle(f"camapp bench: {Path(report.clip).name}, {report.model}, {report.cores} cores")
    fig.tight_layout()
    charts.save(fig, path, dpi=100)
