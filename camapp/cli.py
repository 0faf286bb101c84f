"""The `camapp` command: argument parsing, wiring of the parts, exit codes.

Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error.
Errors are one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import cv2

from camapp import __version__, ha, models
from camapp.commands import CommandHandler
from camapp.config import KEYS, PASSWORD_ENV, Config, build, default_workers, read_file
from camapp.controls import Controls
from camapp.errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, CamappError, ConfigError
from camapp.governor import Controller, Governor, SourceInfo
from camapp.inference import Classification, Classifier
from camapp.motion import MotionGate
from camapp.mqtt import MqttPublisher, dumps
from camapp.pipeline import Pipeline
from camapp.sensors import Sensors
from camapp.sinks import ClassificationSink, PrintSink
from camapp.sources import Reconnecting, Source, open_source
from camapp.sources.opencv_setup import configure_opencv
from camapp.state import StateSink

log = logging.getLogger("camapp")

EPILOG = "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other camapp error, instead of argparse's usage dump."""
        self.exit(EXIT_USAGE, f"camapp: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="camapp", description=__doc__.splitlines()[0], epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"camapp {__version__}")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("classify", help="classify image files", epilog=EPILOG)
    c.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    _model_args(c)
    c.add_argument("--json", action="store_true", help="one JSON object per image per line")

    r = sub.add_parser(
        "run",
        help="classify a camera, stream or video and publish over MQTT",
        epilog=EPILOG,
    )
    r.add_argument("--source", help="picamera[:N], usb:N, /dev/videoN, rtsp://..., or a video file")
    r.add_argument("--config", type=Path, help="TOML or YAML file with any of these settings")
    _model_args(r)
    r.add_argument("--camera-id", help="topic level naming this camera (default cam0)")
    r.add_argument("--workers", type=int, help="inference threads, one interpreter each")
    r.add_argument(
        "--threads-per-worker",
        type=int,
        help="interpreter threads per worker (default 1)",
    )
    r.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_const",
        const=False,
        help="read a video file as fast as it decodes instead of at its frame rate",
    )
    r.add_argument(
        "--no-drop",
        dest="drop",
        action="store_const",
        const=False,
        help="classify every frame in order (reproducible replays)",
    )
    r.add_argument("--loop", action="store_const", const=True, help="replay a video file forever")
    r.add_argument("--stride", type=int, help="classify 1 frame in N (default 1)")
    r.add_argument("--max-frames", type=int, help="stop after capturing N frames")
    r.add_argument("--duration", type=float, help="stop after S seconds")
    r.add_argument(
        "--print",
        action="store_const",
        const=True,
        help="also print each classification message on stdout",
    )
    g = r.add_argument_group("budgets (see docs/governor.md)")
    g.add_argument(
        "--cpu-budget",
        type=float,
        metavar="PCT",
        help="camapp's CPU as a percent of the whole machine (100 = every core)",
    )
    g.add_argument(
        "--power-budget", type=float, metavar="W", help="board power, measured or estimated"
    )
    g.add_argument("--temp-limit", type=float, metavar="C", help="SoC temperature")
    g.add_argument(
        "--motion-threshold",
        type=float,
        metavar="LEVELS",
        help="skip inference while the scene changes less than this (mean grey levels, 0-255)",
    )
    g.add_argument(
        "--motion-refresh",
        type=float,
        metavar="S",
        help="classify an unchanged scene at least every S seconds (default 10)",
    )
    g.add_argument(
        "--stats-interval",
        type=float,
        metavar="S",
        help="seconds between stats messages (default 5)",
    )
    g.add_argument("--power-idle", type=float, metavar="W", help="power model: idle board power")
    g.add_argument("--power-full", type=float, metavar="W", help="power model: all cores busy")
    r.add_argument(
        "--state-frames",
        type=int,
        help="consecutive agreeing classifications before the state changes (default 3)",
    )
    r.add_argument(
        "--threshold",
        type=float,
        help="score a classification needs to count towards the state (default 0.5)",
    )
    pi = r.add_argument_group("Pi camera (picamera sources only)")
    pi.add_argument("--picamera-fps", type=float, metavar="FPS", help="frame rate (default 15)")
    pi.add_argument(
        "--picamera-main-size",
        metavar="WxH",
        help="main stream size, which picks the sensor mode and crop (default 1280x960)",
    )
    pi.add_argument(
        "--picamera-lores-size",
        metavar="WxH",
        help="model-input stream size (default: the main's aspect, just covering the model)",
    )
    pi.add_argument(
        "--picamera-lores-format",
        metavar="FORMAT",
        help="model-input stream format: YUV420 (default) or RGB888 (Pi 5 only)",
    )
    _mqtt_args(r)
    r.add_argument(
        "--no-ha-discovery",
        dest="ha_discovery",
        action="store_const",
        const=False,
        help="do not announce the camera to Home Assistant",
    )

    h = sub.add_parser("ha", help="Home Assistant discovery", epilog=EPILOG)
    hsub = h.add_subparsers(dest="action", required=True, parser_class=_Parser)
    hr = hsub.add_parser(
        "remove",
        help="delete cameras' Home Assistant entities (empty retained discovery configs)",
        epilog=EPILOG,
    )
    hr.add_argument("--config", type=Path, help="the camera's config file (broker, camera_id)")
    hr.add_argument(
        "--camera-id",
        dest="camera_ids",
        action="append",
        metavar="ID",
        help="a camera to remove; repeat for several (default: the config's camera_id)",
    )
    _mqtt_args(hr)

    b = sub.add_parser(
        "bench",
        help="measure camapp against the bare interpreter and a naive loop",
        epilog=EPILOG,
    )
    b.add_argument("--clip", type=Path, help="video file (default sample_videos/car-detection.mp4)")
    b.add_argument("--model", help=f"model file or known name (default {models.DEFAULT_MODEL})")
    b.add_argument("--workers", type=int, help="camapp workers (default: one per core, at most 4)")
    b.add_argument("--threads-per-worker", type=int, default=1, help="default 1")
    b.add_argument("--duration", type=float, default=10.0, help="seconds of camapp at full speed")
    b.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="measure the full-speed rows N times and report medians (default 3, 1 with --quick)",
    )
    b.add_argument("--quick", action="store_true", help="a few seconds in all: a smoke test")
    b.add_argument(
        "--soak", type=float, metavar="S", help="run at real-time pace for S s (RSS growth)"
    )
    b.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="report directory")

    m = sub.add_parser("model", help="fetch and inspect models", epilog=EPILOG)
    msub = m.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    f = msub.add_parser("fetch", help="download a known model and verify its sha256")
    f.add_argument("name", nargs="?", default=models.DEFAULT_MODEL)
    f.add_argument("--mirror", type=Path, help="copy from this directory instead of downloading")
    f.add_argument("--dir", type=Path, help="where to store it (default: the model directory)")
    i = msub.add_parser("info", help="inputs, outputs, quantization and labels of a model")
    i.add_argument("path", help="a model file or a known model name")
    msub.add_parser("list", help="the known models")
    return p


def _mqtt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt-host", help="broker host (default localhost)")
    p.add_argument("--mqtt-port", type=int, help="broker port (default 1883)")
    p.add_argument("--mqtt-base-topic", help="base topic (default camapp)")
    p.add_argument("--mqtt-qos", type=int, help="QoS of published messages (default 1)")
    p.add_argument("--mqtt-client-id", help="MQTT client id (default camapp-<camera_id>)")
    p.add_argument("--mqtt-username", help="broker user name")
    p.add_argument(
        "--mqtt-password-file",
        help=f"file holding the broker password (else ${PASSWORD_ENV})",
    )
    p.add_argument("--mqtt-tls", action="store_const", const=True, help="TLS, system CAs")
    p.add_argument("--mqtt-tls-ca", help="CA certificate(s) to verify the broker with (TLS)")
    p.add_argument("--mqtt-tls-cert", help="client certificate (TLS)")
    p.add_argument("--mqtt-tls-key", help="client certificate's key (TLS)")
    p.add_argument(
        "--mqtt-tls-insecure",
        action="store_const",
        const=True,
        help="TLS without verifying the broker's certificate (testing only)",
    )
    p.add_argument(
        "--mqtt-buffer-messages",
        type=int,
        help="messages kept for the broker while it is away (default 10000)",
    )
    p.add_argument(
        "--mqtt-buffer-bytes",
        type=int,
        help="bytes kept for the broker while it is away (default 8388608)",
    )
    p.add_argument("--ha-prefix", help="Home Assistant discovery prefix (default homeassistant)")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=f"model file or known name (default {models.DEFAULT_MODEL})")
    p.add_argument("--labels", help="labels file (default: the model's embedded labels)")
    p.add_argument("--top-k", type=int, help="how many classes to report (default 5)")
    p.add_argument("--crop", help="center (default) or stretch")
    p.add_argument("--delegate", help="'edgetpu' or the path of a TFLite delegate library")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="camapp: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    configure_opencv(args.debug)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader gone early shows here, not at exit after the verdict
        return code
    except CamappError as exc:
        return _error(args, str(exc), exc.exit_code)
    except BrokenPipeError:  # stdout closed early, e.g. `camapp classify ... | head -1`
        return _error(args, "output closed before camapp finished (broken pipe)", EXIT_RUNTIME)
    except OSError as exc:  # a file or directory the user named that cannot be used
        where = f": {exc.filename}" if exc.filename else ""
        return _error(args, f"{exc.strerror or exc}{where}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _error(args, "interrupted", EXIT_RUNTIME)
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        return _error(args, f"internal error: {type(exc).__name__}: {exc}", EXIT_RUNTIME)


def _error(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        log.exception("failed")
    print(f"camapp: error: {message}", file=sys.stderr)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # what is still buffered can go nowhere: drop it, not at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


def _config(args: argparse.Namespace, **override: Any) -> Config:
    """The settings of the config file (if any), overridden by the command line."""
    file_values: dict[str, Any] = {}
    origin = "command line"
    if getattr(args, "config", None):
        file_values, origin = read_file(args.config), str(args.config)
    return build(file_values, {**vars(args), **override}, origin)


def _classifiers(cfg: Config, count: int) -> tuple[list[Classifier], str]:
    """Load the model once per worker; any problem with it surfaces before capture starts."""
    path = models.resolve_model(cfg.model)
    labels = models.read_labels(path, Path(cfg.labels) if cfg.labels else None)
    made = [
        Classifier(path, labels, cfg.threads_per_worker, cfg.delegate, cfg.top_k, cfg.crop)
        for _ in range(count)
    ]
    return made, models.display_name(path)


def cmd_classify(args: argparse.Namespace) -> int:
    cfg = _config(args)
    images = []
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            raise ConfigError(f"cannot read image: {path}")
        images.append((path, image))
    [classifier], _ = _classifiers(cfg, 1)
    for path, image in images:
        result = classifier.classify(image, bgr=True)
        print(_classify_line(path, result, args.json))
    return EXIT_OK


def _classify_line(path: Path, result: Classification, as_json: bool) -> str:
    best = result.top_k[0]
    if not as_json:
        others = ", ".join(f"{p.label} {p.score:.2f}" for p in result.top_k[1:])
        return f"{path}: {best.label} ({best.score:.2f})" + (f"; then {others}" if others else "")
    top = [{"label": p.label, "class_id": p.class_id, "score": p.score} for p in result.top_k]
    record = {
        "image": str(path),
        "label": best.label,
        "class_id": best.class_id,
        "score": best.score,
        "top_k": top,
    }
    return json.dumps(record)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if not cfg.source:
        raise ConfigError("no source: pass --source or set 'source' in the config file")
    classifiers, model_name = _classifiers(cfg, cfg.workers)
    publisher = MqttPublisher(cfg.mqtt, cfg.camera_id)  # checks TLS files before the camera
    stop = threading.Event()  # the pipeline's stop event, which a reconnecting source obeys
    # A reconnection reopens the source with the same settings.
    opener = functools.partial(
        open_source, cfg.source, cfg.realtime, cfg.loop, cfg.picamera, classifiers[0].size
    )
    source = opener()
    if source.live:
        source = Reconnecting(opener, stop, first=source)
    controls = Controls(
        stride=cfg.stride,
        threshold=cfg.threshold,
        cpu_budget=cfg.cpu_budget,
        power_budget=cfg.power_budget,
        temp_limit=cfg.temp_limit,
    )
    CommandHandler(publisher, controls)
    if cfg.ha.discovery:
        ha.Discovery(publisher, cfg.ha, model_name)
    sinks: list[Any] = [
        ClassificationSink(publisher, model_name),
        StateSink(publisher, controls, cfg.state_frames),
    ]
    if cfg.print:
        sinks.append(PrintSink(cfg.camera_id))
    # Frames are dropped only where they go stale: live cameras and paced replays.
    drop = cfg.drop and source.paced
    motion = None
    if cfg.motion_threshold:
        # After a change, let enough frames through for the debounced state to confirm it.
        follow = cfg.state_frames - 1
        motion = MotionGate(cfg.motion_threshold, cfg.motion_refresh, follow)
    pipeline = Pipeline(
        source, classifiers, sinks, drop, controls, cfg.max_frames, cfg.duration, motion, stop
    )
    governor = _governor(cfg, source, pipeline, controls, publisher)

    on_signal = signal_handler(pipeline)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info(
        "classifying %s with %s on %d worker(s); publishing to %s:%d under %s",
        source.name,
        model_name,
        len(classifiers),
        cfg.mqtt.host,
        cfg.mqtt.port,
        publisher.topic("#"),
    )
    publisher.start()
    governing = threading.Event()
    governor_thread = threading.Thread(
        target=governor.run, args=(governing,), name="governor", daemon=True
    )
    governor_thread.start()
    stats = pipeline.run()
    governing.set()
    governor_thread.join()
    undelivered = publisher.close()
    rate = stats.classified / stats.elapsed_s if stats.elapsed_s else 0.0
    log.info(
        "%d frames captured, %d classified (%.1f/s), skipped %s, in %.1f s",
        stats.captured,
        stats.classified,
        rate,
        ", ".join(f"{n} {reason}" for reason, n in stats.skipped.items()),
        stats.elapsed_s,
    )
    if stats.discarded:
        log.warning("%d queued frames discarded by a forced stop", stats.discarded)
    if publisher.dropped:
        log.warning(
            "%d MQTT messages dropped, oldest classifications first: the outbound buffer "
            "(mqtt buffer_messages/buffer_bytes) was full while the broker was away",
            publisher.dropped,
        )
    if stats.errors:
        raise stats.errors[0]
    if undelivered:
        raise CamappError(
            f"{undelivered} MQTT messages not delivered to {cfg.mqtt.host}:{cfg.mqtt.port}"
        )
    return EXIT_OK


def signal_handler(pipeline: Pipeline) -> Callable[[int, Any], None]:
    """SIGINT/SIGTERM: the first finishes the run gracefully, a second abandons the queued
    frames. Counted here, not read off the pipeline: --duration or a failure may have
    stopped it before the user's first signal."""
    signals = 0

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: finishing in-flight frames", signal.Signals(signum).name)
            pipeline.stop()
        else:
            log.warning("%s again: abandoning the queued frames", signal.Signals(signum).name)
            pipeline.abort()

    return on_signal


def _governor(
    cfg: Config, source: Source, pipeline: Pipeline, controls: Controls, publisher: MqttPublisher
) -> Governor:
    """The governor always runs: budgets may be set over MQTT at any time, and stats flow."""
    power_model = (cfg.power_idle, cfg.power_full) if cfg.power_idle is not None else None
    sensors = Sensors(power_model=power_model)
    paced = source.paced
    info = SourceInfo(paced=paced, slowable=not source.live, fps=source.fps if paced else 0.0)
    controller = Controller(info, len(pipeline.classifiers), sensors.power_model[0])
    return Governor(
        pipeline,
        controls,
        sensors,
        controller,
        # The outbox's shedding is counted with the pipeline's skips, in one message.
        publish=lambda stats: publisher.publish(
            "stats", dumps(stats | {"mqtt_dropped": publisher.dropped})
        ),
        stats_interval=cfg.stats_interval,
    )


def cmd_ha(args: argparse.Namespace) -> int:
    """`ha remove`: one connection per camera (its own ACL may allow only its own topics)."""
    configs = [_config(args, camera_id=c) for c in args.camera_ids or [None]]
    for each in configs:
        # Its own client id: reusing the camera's would disconnect a running camera.
        client_id = f"{each.mqtt.client_id or ha.node_id(each.camera_id)}-remove"
        settings = dataclasses.replace(each.mqtt, client_id=client_id)
        publisher = MqttPublisher(settings, each.camera_id, availability=False)
        ha.remove(publisher, each.ha.prefix)
        publisher.start()
        if publisher.close(timeout=10):
            raise CamappError(
                f"could not reach the broker at {each.mqtt.host}:{each.mqtt.port} "
                f"to remove camera {each.camera_id}"
            )
        log.info("sent the removal of camera %s's Home Assistant entities", each.camera_id)
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    if args.model_command == "fetch":
        path = models.fetch(args.name, args.dir, args.mirror, progress=lambda m: log.info("%s", m))
        print(path)
    elif args.model_command == "info":
        print(models.format_model_info(models.model_info(models.resolve_model(args.path))))
    else:
        for name, spec in models.load_manifest().items():
            default = " (default)" if name == models.DEFAULT_MODEL else ""
            print(f"{name}{default}: {spec.file}\n    {spec.description}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from camapp import bench  # matplotlib and the benchmark code load only for this command

    workers = default_workers() if args.workers is None else args.workers
    # The same bounds as `camapp run`'s settings (config.KEYS), stated once.
    for flag, key, value in (
        ("workers", "workers", workers),
        ("threads-per-worker", "threads_per_worker", args.threads_per_worker),
        ("duration", "duration", args.duration),
        ("soak", "duration", args.soak),
    ):
        problem = KEYS[key][1](value) if value is not None else None
        if problem:
            raise ConfigError(f"--{flag}: {problem} (got {value:g})")
    if args.rounds is not None and not 1 <= args.rounds <= 20:
        raise ConfigError(f"--rounds: must be between 1 and 20 (got {args.rounds})")
    plan = bench.Plan(
        clip=args.clip or bench.DEFAULT_CLIP,
        model=args.model,
        workers=workers,
        threads=args.threads_per_worker,
        cores=os.cpu_count() or 1,
        run_s=args.duration,
    )
    if args.quick:
        plan = bench.quick(plan)
    if args.rounds is not None:
        plan.rounds = args.rounds
    if args.soak:
        plan.realtime_s = args.soak
        plan.warmup_s = min(60.0, args.soak / 10)
    report = bench.run(plan, args.out)
    print(bench.markdown(report), end="")
    return EXIT_OK


COMMANDS = {
    "classify": cmd_classify,
    "run": cmd_run,
    "ha": cmd_ha,
    "bench": cmd_bench,
    "model": cmd_model,
}
