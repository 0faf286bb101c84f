"""`camapp model`: fetch, inspect, list, compare, quantize and dequantize models."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camapp import models
from camapp.cli.common import EPILOG, Parser, run_config
from camapp.cli.progress import Bar
from camapp.config import flags
from camapp.errors import EXIT_OK, ConfigError, shorten
from camapp.models import measured
from camapp.tflite import modelfile
from camapp.tflite.graph import Kind
from camapp.tflite.modelfile import ModelFile, open_model
from camapp.tflite.quantize import IO_TYPES, dequantize_model, quantize_model
from camapp.tools import calibration, compare_detectors, pair
from camapp.tools import compare as zoo

log = logging.getLogger("camapp")

MAX_SAMPLES = 300  # calibration frames; as many again are held out to judge the result


def add(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("model", help="fetch, inspect, compare and quantize models", epilog=EPILOG)
    actions = m.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    f = actions.add_parser("fetch", help="download known models and verify their sha256")
    f.add_argument("names", nargs="*", metavar="NAME", help=f"default {models.DEFAULT_MODEL}")
    f.add_argument("--all", action="store_true", help="every model of the manifest")
    f.add_argument("--mirror", type=Path, help="copy from this directory instead of downloading")
    f.add_argument("--dir", type=Path, help="where to store them (default: the model directory)")
    f.set_defaults(handler=fetch)
    i = actions.add_parser("info", help="inputs, outputs, quantization and labels of a model")
    i.add_argument("path", help="a model file or a known model name")
    i.set_defaults(handler=info)
    actions.add_parser(
        "list", help="the known models: kind, input, label set, licence, size, latency here"
    ).set_defaults(handler=list_models)
    _add_compare(actions)
    _add_quantize(actions)
    d = actions.add_parser("dequantize", help="a float32 copy of a quantized model")
    d.add_argument("model", metavar="MODEL", help="an int8 model file or a known model name")
    d.add_argument("--out", type=Path, required=True, metavar="FLOAT.tflite")
    d.set_defaults(handler=dequantize)


def _add_compare(actions: argparse._SubParsersAction) -> None:
    c = actions.add_parser(
        "compare",
        help="size, cost, latency, throughput, agreement and accuracy of models (classifiers, "
        "or detectors: their counts), measured here",
        epilog=EPILOG,
    )
    c.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="classifiers, or detectors (one kind at a time); default: every fetched CPU "
        "classifier",
    )
    c.add_argument(
        "--images", type=Path, action="append", default=[], metavar="DIR", help="its images"
    )
    c.add_argument(
        "--dataset",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="labelled images, a folder per class named as the label: adds top-1 accuracy",
    )
    c.add_argument(
        "--video", type=Path, action="append", default=[], metavar="FILE", help="--frames of it"
    )
    c.add_argument("--frames", type=int, default=100, help="frames per video (default 100)")
    c.add_argument(
        "--occupancy",
        type=Path,
        metavar="JSON",
        help="detectors: frame labels of the one --video (the occupancy dataset's ranges: a "
        "frame labelled with a tracked label holds one such object, 'empty' none); --frames of "
        "its labelled frames are counted against them",
    )
    flags.add_flags(c, only={"track", "min_score"})
    c.add_argument(
        "--reference",
        metavar="MODEL",
        help=f"agreement is with this (default {models.DEFAULT_MODEL}, for detectors "
        f"{models.DEFAULT_DETECTOR}, if compared, else the first)",
    )
    c.add_argument(
        "--seconds", type=float, default=3.0, help="least time of each pipeline run (default 3)"
    )
    c.add_argument(
        "--chart",
        type=Path,
        default=Path("model-compare.png"),
        metavar="PNG",
        help="accuracy and agreement against latency (default model-compare.png)",
    )
    c.set_defaults(handler=compare)


def _add_quantize(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser(
        "quantize", help="full-integer (int8) post-training quantization of a float model"
    )
    q.add_argument("model", type=Path, metavar="FLOAT.tflite")
    q.add_argument(
        "--calibration",
        type=Path,
        required=True,
        metavar="DIR|VIDEO",
        help="frames like the camera's: a folder of images or a video",
    )
    q.add_argument(
        "--samples",
        type=int,
        default=32,
        help=f"calibration frames (default 32, at most {MAX_SAMPLES}); as many more are held out",
    )
    q.add_argument("--io", choices=sorted(IO_TYPES), default="uint8", help="input/output type")
    q.add_argument("--out", type=Path, required=True, metavar="INT8.tflite")
    q.set_defaults(handler=quantize)


def fetch(args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise ConfigError("give model names or --all, not both")
    names = list(models.load_manifest()) if args.all else args.names or [models.DEFAULT_MODEL]
    for name in names:
        path = models.fetch(name, args.dir, args.mirror, progress=lambda m: log.info("%s", m))
        print(path)
    return EXIT_OK


def info(args: argparse.Namespace) -> int:
    print(models.format_model_info(models.model_info(models.resolve_model(args.path))))
    return EXIT_OK


def list_models(args: argparse.Namespace) -> int:
    """One line per known model, then what each is."""
    model_dir = models.default_model_dir()
    seen = measured.read(model_dir)
    specs = models.load_manifest().values()
    head = (
        "model", "kind", "input", "label set", "ladder", "licence", "MiB", "on disk",
        "latency measured here",
    )  # fmt: skip
    rows = [head]
    for spec in specs:
        got = seen.get(spec.sha256)
        rows.append(
            (
                spec.name + (" (default)" if spec.name == models.DEFAULT_MODEL else ""),
                spec.kind,
                f"{spec.input_size}x{spec.input_size}",
                spec.labels_set,
                str(spec.ladder or "—"),
                spec.licence,
                f"{spec.size / 2**20:.2f}",
                "fetched" if (model_dir / spec.file).is_file() else "not fetched",
                got.brief() if got else "— (camapp model compare)",
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\nmodel directory: {model_dir}")
    for spec in specs:
        print(f"{spec.name}: {spec.description}")
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    paths = [models.resolve_model(m) for m in args.models] or zoo.default_models()
    files = {path: open_model(path) for path in paths}  # each read once
    detecting = _detectors(files)
    names = {models.display_name(p): p for p in paths}
    if args.reference is not None:
        reference = models.resolve_model(args.reference)
        if reference not in files:
            files[reference] = open_model(reference)
        _detectors(files)
    else:
        default = models.DEFAULT_DETECTOR if detecting else models.DEFAULT_MODEL
        reference = names.get(default, paths[0])
    if not 0.1 <= args.seconds <= 600:
        raise ConfigError(f"--seconds must be 0.1 to 600, not {args.seconds}")
    if args.chart.suffix.lower() != ".png":  # else an internal ValueError after the runs
        raise ConfigError(f"--chart must name a .png file, not {shorten(args.chart)}")
    if not detecting and (args.occupancy or flags.values(args)):
        raise ConfigError("--occupancy, --track and --min-score are for comparing detectors")
    [camera] = run_config(args).cameras  # --track and --min-score, checked as settings are
    cover = max(max(_input_size(files[p], detecting)) for p in {*paths, reference})
    occupancy = args.occupancy
    data = zoo.load_data(args.images, args.dataset, args.video, args.frames, cover, occupancy)
    bar = Bar("camapp model compare")
    plan = zoo.Plan(seconds=args.seconds)
    try:
        if detecting:
            track, score = camera.track, camera.min_score
            rows = compare_detectors.compare(paths, reference, data, track, score, plan, bar)
        else:
            rows = zoo.compare(paths, reference, data, plan, bar)
    finally:
        bar.close()
    if detecting:
        print(compare_detectors.markdown(rows, data, camera.min_score), end="")
    else:
        print(zoo.markdown(rows, data), end="")
    kept = zoo.remember(rows)
    if kept:
        log.info("latencies kept in %s (shown by camapp model list)", kept)
    chart = zoo.chart(rows, args.chart, "count" if detecting else "top-1")
    if chart:
        log.info("chart: %s", chart)
    else:
        log.warning("no chart: it needs matplotlib (pip install 'camapp[bench]')")
    return EXIT_OK


def _input_size(file: ModelFile, detector: bool) -> tuple[int, int]:
    """A model's input (height, width); a classifier's checked to be one."""
    if detector:
        _, height, width, _ = file.info.inputs[0].shape
        return height, width
    return file.classifier(()).input_size


def _detectors(files: dict[Path, ModelFile]) -> bool:
    """Whether the models compared are detectors; a classifier and a detector in one
    comparison are refused (one answers in classes, the other in boxes)."""
    kinds = {path: file.kind for path, file in files.items()}
    detectors = [p for p, kind in kinds.items() if kind == Kind.DETECTOR]
    if detectors and len(detectors) < len(kinds):
        other = next(p for p in kinds if p not in detectors)
        raise ConfigError(
            f"model compare takes one kind at a time: {models.display_name(other)} is a "
            f"classifier, {models.display_name(detectors[0])} a detector"
        )
    return bool(detectors)


def quantize(args: argparse.Namespace) -> int:
    """Calibrate on every other frame, judge on the frames between them."""
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples must be 1 to {MAX_SAMPLES}, not {args.samples}")
    _distinct(args.model, args.out)
    spec = open_model(args.model).classifier(())
    height, width = spec.input_size
    if height != width or spec.layout != "NHWC" or spec.channels != 3:
        raise ConfigError(f"quantize takes square RGB NHWC models, not {args.model}")
    if (spec.mean, spec.std) not in ((None, None), ((127.5,), (127.5,))):
        raise ConfigError(
            f"quantize calibrates with MobileNet's normalisation (mean 127.5, std 127.5); "
            f"{shorten(args.model)} asks for mean {spec.mean} std {spec.std}"
        )
    frames = calibration.read_frames(args.calibration, 2 * args.samples, cover=height)
    if len(frames) < 2:
        raise ConfigError(f"{shorten(args.calibration)}: need at least 2 frames")
    calibrate, held_out = frames[::2], frames[1::2]
    log.info("calibrating on %d frames, %d held out", len(calibrate), len(held_out))
    with modelfile.replacing(args.out) as part:  # becomes --out only once it ran
        quantize_model(args.model, calibration.to_samples(calibrate, height), part, args.io)
        result = pair.compare(args.model, part, held_out)
        try:
            sure = f"{pair.agreement(args.model, part, held_out, min_score=zoo.SURE):.1%}"
        except ConfigError:  # no held-out frame the float model is sure of
            sure = "no such frame"
    print(
        f"{args.out}: {args.out.stat().st_size / 2**20:.2f} MiB, {result.size_ratio:.2f}x smaller "
        f"than {args.model.name}; {result.speedup:.2f}x faster ({result.median_ms[0]:.1f} -> "
        f"{result.median_ms[1]:.1f} ms per frame, 1 thread)\n"
        f"top-1 agreement with the float model on {len(held_out)} held-out frames: "
        f"{result.agreement:.1%}; on those it scores {zoo.SURE} or more: {sure}"
    )
    return EXIT_OK


def dequantize(args: argparse.Namespace) -> int:
    """MODEL is a file or a known name, as everywhere else."""
    model = models.resolve_model(args.model)
    _distinct(model, args.out)
    dequantize_model(model, args.out)
    ratio = args.out.stat().st_size / model.stat().st_size
    print(
        f"{args.out}: float32, {args.out.stat().st_size / 2**20:.2f} MiB "
        f"({ratio:.2f}x {model.name})"
    )
    return EXIT_OK


def _distinct(model: Path, out: Path) -> None:
    """Refuse an `out` that is the input model itself: writing over it loses the original."""
    if Path(out).exists() and Path(out).samefile(model):  # also through a link
        raise ConfigError(f"--out {shorten(out)} is the input model: name another file")
