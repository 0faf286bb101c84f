"""`camapp model compare`: the figures a model is chosen by, measured on this device.

For each model: file size, parameters and MACs counted from its graph, the median invoke time
at 1..cores interpreter threads, classifications/s through the real pipeline (one camera,
one worker per core, every frame classified), top-1 agreement with a reference model of the
same label set, and top-1 accuracy on labelled images (a folder per class).

Frames are decoded once and shrunk to just cover the largest model input, as a Pi camera's
lores stream hands them over, so decoding is out of every figure and each model sees the
same pixels through its own preprocessing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camapp import charts
from camapp.capture.base import Frame
from camapp.capture.imagefile import read_image
from camapp.config.schema import CameraSettings, default_workers
from camapp.datasets import scan
from camapp.errors import ConfigError, shorten
from camapp.inference import loader
from camapp.inference.timing import median_invoke_ms
from camapp.models import measured
from camapp.models.manifest import display_name, load_manifest
from camapp.models.store import _file_sha256, default_model_dir
from camapp.runtime.camera import CameraPlan, Result
from camapp.runtime.controls import Controls
from camapp.runtime.pipeline import Pipeline
from camapp.tflite.modelfile import open_model
from camapp.tools.calibration import positions, read_frames, shrink
from camapp.training.clip import clip_frames, frame_labels

MAX_FRAMES = 500  # ~130 MB of frames shrunk to cover 224 px; enough to rank models by
# A top score the app's state counts: agreement on the frames the reference is this sure of
# is what a swap of models changes for a user (unsure frames flip between near ties).
SURE = 0.5
Progress = Callable[[str, int, int], None]  # (what is being done, steps done, steps in all)


@dataclass(frozen=True)
class Data:
    """What the models are run on."""

    frames: list[np.ndarray]  # RGB, shrunk to cover the largest model input
    truth: list[str | None]  # the class folder of a --dataset image; None when unlabelled
    summary: str  # "12 images, 200 video frames"


@dataclass
class Measured:
    """What every model compared is measured by, a classifier (`Row`) or a detector
    (`compare_detectors.DetectorRow`): the chart and the record read these."""

    name: str
    path: Path
    labels_set: str | None  # the manifest's, for a known model
    bytes: int
    params: int | None
    macs: int | None
    input_size: tuple[int, int]  # (height, width)
    latency_ms: dict[int, float]  # median invoke time by interpreter threads
    per_s: float  # answers/s through the pipeline
    workers: int


@dataclass
class Row(Measured):
    """One classifier's figures."""

    top1: list[str] = field(repr=False)  # the top-1 label of each frame
    scores: list[float] = field(repr=False)  # its score
    labels: frozenset[str] = field(repr=False)
    agreement: float | None = None  # with the reference; None: another label set
    sure_agreement: float | None = None  # ... on the frames the reference scores SURE or more
    sure: int = 0  # how many frames those are
    accuracy: float | None = None  # None: no frame of a class this model knows
    scored: int = 0  # labelled frames whose class this model knows


def load_data(
    images: Sequence[Path] = (),
    datasets: Sequence[Path] = (),
    videos: Sequence[Path] = (),
    per_video: int = 100,
    cover: int = 224,
    occupancy: Path | None = None,
) -> Data:
    """Frames from image folders, labelled datasets (a folder per class) and videos (`per_video`
    evenly spaced frames each; with an `occupancy` ranges file, of the one video's labelled
    frames, each with its label), at most MAX_FRAMES in all."""
    if not 1 <= per_video <= MAX_FRAMES:
        raise ConfigError(f"--frames must be 1 to {MAX_FRAMES}, not {per_video}")
    frames: list[np.ndarray] = []
    truth: list[str | None] = []
    counts = dict.fromkeys(("images", "labelled images", "video frames"), 0)
    if occupancy is not None:
        if len(videos) != 1:
            raise ConfigError("--occupancy labels the frames of one --video FILE: give one")
        frames, truth = _labelled_frames(videos[0], occupancy, per_video, cover)
        counts["labelled video frames"], videos = len(frames), ()
    for folder in images:
        if not Path(folder).is_dir():
            raise ConfigError(f"--images: not a directory: {shorten(folder)}")
        found = read_frames(folder, MAX_FRAMES, cover=cover)
        frames += found
        truth += [None] * len(found)
        counts["images"] += len(found)
        _check_count(len(frames))
    for root in datasets:
        for image, label in _labelled(Path(root), cover):
            frames.append(image)
            truth.append(label)
            counts["labelled images"] += 1
        _check_count(len(frames))
    for video in videos:
        if not Path(video).is_file():
            raise ConfigError(f"--video: file not found: {shorten(video)}")
        found = read_frames(video, per_video, cover=cover)
        frames += found
        truth += [None] * len(found)
        counts["video frames"] += len(found)
        _check_count(len(frames))
    if not frames:
        raise ConfigError("nothing to compare on: give --images DIR, --dataset DIR or --video FILE")
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    return Data(frames, truth, summary)


def _labelled(root: Path, cover: int) -> list[tuple[np.ndarray, str]]:
    """A dataset's images (RGB, shrunk) with their class folder's name; a dataset is laid out
    as `camapp train` reads one."""
    samples = scan(root)
    if not samples:
        raise ConfigError(f"--dataset {shorten(root)}: no images in class folders")
    _check_count(len(samples))
    found = []
    for sample in samples:
        image = read_image(sample.path)
        found.append((cv2.cvtColor(shrink(image, cover), cv2.COLOR_BGR2RGB), sample.label))
    return found


def _labelled_frames(
    video: Path, ranges: Path, count: int, cover: int
) -> tuple[list[np.ndarray], list[str | None]]:
    """`count` frames of `video` (RGB, shrunk) evenly spaced over those its ranges file
    labels (the occupancy dataset's format, training/clip.py), each with its label."""
    labels = frame_labels(ranges)
    if not labels:
        raise ConfigError(f"--occupancy {shorten(ranges)}: no labelled frames")
    indices = sorted(labels)
    chosen = [indices[k] for k in positions(len(indices), count, (0, 1))]
    frames: list[np.ndarray] = []
    wanted = set(chosen)
    for index, frame in clip_frames(video, last=chosen[-1]):
        if index in wanted:
            frames.append(cv2.cvtColor(shrink(frame, cover), cv2.COLOR_BGR2RGB))
    if len(frames) < len(chosen):
        raise ConfigError(
            f"--occupancy {shorten(ranges)} labels frame {chosen[-1]}, beyond the end of "
            f"{shorten(video)} ({len(frames)} of {len(chosen)} found)"
        )
    return frames, [labels[i] for i in chosen]


def _check_count(count: int) -> None:
    if count > MAX_FRAMES:
        raise ConfigError(f"{count} frames to compare on: at most {MAX_FRAMES} (use fewer)")


def default_models(model_dir: Path | None = None) -> list[Path]:
    """Every fetched classifier of the manifest that runs on the CPU, in manifest order
    (compare measures classifiers: a detector answers in boxes, not classes)."""
    model_dir = default_model_dir() if model_dir is None else model_dir
    found = [
        model_dir / spec.file
        for spec in load_manifest().values()
        if spec.delegate is None and spec.kind == "classifier" and (model_dir / spec.file).is_file()
    ]
    if not found:
        raise ConfigError(
            f"no models fetched in {shorten(model_dir)}: run `camapp model fetch --all`, "
            "or name model files"
        )
    return found


# --- measuring one model ---------------------------------------------------------------------


class _Replay:
    """The frames, from memory, as fast as they are taken: every frame once, then again until
    `seconds` have passed since the first read, so a fast model is timed long enough."""

    name = "compare"
    live = False
    paced = False
    fps = 0.0

    def __init__(self, frames: list[np.ndarray], seconds: float) -> None:
        self._frames, self._seconds = frames, seconds
        self._seq, self._until = 0, 0.0

    def read(self) -> Frame | None:
        now = time.monotonic()
        if self._seq == 0:
            self._until = now + self._seconds
        elif self._seq >= len(self._frames) and now >= self._until:
            return None
        image = self._frames[self._seq % len(self._frames)]
        frame = Frame(self._seq, time.time(), image, now)
        self._seq += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""


class _FirstPass:
    """A sink keeping each frame's first answer: its classification, or its detections."""

    def __init__(self, count: int) -> None:
        self.answers: list[Any] = [None] * count

    def send(self, result: Result) -> None:
        if result.frame < len(self.answers):
            self.answers[result.frame] = result.classification

    @property
    def top1(self) -> list[str]:
        """A classifier's top-1 label of each frame."""
        return [answer.top_k[0].label for answer in self.answers]

    @property
    def scores(self) -> list[float]:
        """... and its score."""
        return [answer.top_k[0].score for answer in self.answers]


def _view(setup: loader.Planned) -> tuple[str, tuple[float, float, float, float] | None]:
    """The crop and region a model runs with where no camera sets its own: those a trained
    model recorded, as `classify` and `run` give it (one rule, loader.view)."""
    return loader.view(CameraSettings(), setup)


def latency(path: Path, frames: list[np.ndarray], threads: int, repeats: int) -> float:
    """Median invoke time (ms) at `threads` interpreter threads, after one warm-up invoke."""
    setup = loader.plan(str(path), threads=threads, top_k=1)
    return median_invoke_ms(loader.load(setup), frames, repeats, _view(setup))


def throughput(
    path: Path, frames: list[np.ndarray], workers: int, seconds: float
) -> tuple[float, _FirstPass]:
    """Classifications/s of a one-camera pipeline with `workers` workers (one interpreter
    thread each) classifying every frame, and the top-1 label and score of each frame."""
    setup = loader.plan(str(path), threads=1, top_k=1)
    return pipeline_rate(setup, frames, workers, seconds)


def pipeline_rate(
    setup: loader.Planned, frames: list[np.ndarray], workers: int, seconds: float
) -> tuple[float, _FirstPass]:
    """Frames/s of a one-camera pipeline with `workers` workers running `setup` (a
    classifier or a detector, one interpreter thread each) on every frame, and each frame's
    first answer."""
    pipeline = Pipeline()
    pool = pipeline.add_pool(workers, loader.load_checked)
    pool.seed(setup, [loader.load_any(setup) for _ in range(workers)])
    sink = _FirstPass(len(frames))
    source = _Replay(frames, seconds)
    plan = CameraPlan("compare", *_view(setup))
    pipeline.add_camera(plan, (setup,), source, [sink], Controls(), pool, drop=False)
    report = pipeline.run()
    if report.errors:
        raise report.errors[0]
    classified = report.cameras["compare"].classified
    return classified / max(report.elapsed_s, 1e-9), sink


@dataclass(frozen=True)
class Plan:
    """How long and how hard to measure."""

    threads: tuple[int, ...] = field(default_factory=lambda: tuple(range(1, _cores() + 1)))
    workers: int = field(default_factory=default_workers)
    seconds: float = 3.0  # least time of each pipeline run
    repeats: int = 20  # timed invokes per thread count


def _cores() -> int:
    return os.cpu_count() or 1


def measure(path: Path, data: Data, plan: Plan, step: Callable[[str], None]) -> Row:
    """Every figure of one model but those against the reference."""
    name = display_name(path)
    file = open_model(path)  # a model that is none fails here, first
    labels = loader.plan(str(path)).labels
    contract = file.classifier(labels)
    info = file.info
    spec = load_manifest().get(name)
    times = {}
    for threads in plan.threads:
        step(f"{name}: latency at {threads} thread{'s' if threads > 1 else ''}")
        times[threads] = latency(path, data.frames, threads, plan.repeats)
    step(f"{name}: pipeline, {plan.workers} workers")
    per_s, first = throughput(path, data.frames, plan.workers, plan.seconds)
    return Row(
        name=name,
        path=path,
        labels_set=spec.labels_set if spec is not None else None,
        bytes=path.stat().st_size,
        params=info.params,
        macs=info.macs,
        input_size=contract.input_size,
        latency_ms=times,
        per_s=per_s,
        workers=plan.workers,
        top1=first.top1,
        scores=first.scores,
        labels=frozenset(labels),
    )


# --- against the reference and the truth -----------------------------------------------------


def _names(label: str) -> set[str]:
    """The names a class folder may give a label by: the whole label, each comma-separated
    synonym (ImageNet: "hotdog, hot dog, red hot") and either side of a parenthesis
    (iNaturalist: "Athene cunicularia (Burrowing Owl)"); any case, `_` for a space."""
    parts = {label, *label.split(",")}
    if label.endswith(")") and "(" in label:
        before, _, inside = label[:-1].rpartition("(")
        parts |= {before, inside}
    return {_key(p) for p in parts if p.strip()}


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def score(row: Row, reference: Row, truth: Sequence[str | None]) -> None:
    """Set a row's agreement with the reference (models answering in the same classes only)
    and its accuracy on the frames whose class folder names one of its labels."""
    if row.labels == reference.labels:
        same = [a == b for a, b in zip(row.top1, reference.top1, strict=True)]
        row.agreement = sum(same) / len(same)
        sure = [s for s, score in zip(same, reference.scores, strict=True) if score >= SURE]
        row.sure = len(sure)
        row.sure_agreement = sum(sure) / len(sure) if sure else None
    known = set().union(*map(_names, row.labels))
    scored = [(_key(t), top) for t, top in zip(truth, row.top1, strict=True) if t is not None]
    scored = [(t, top) for t, top in scored if t in known]
    row.scored = len(scored)
    if scored:
        row.accuracy = sum(t in _names(top) for t, top in scored) / len(scored)


def compare(
    paths: Sequence[Path],
    reference: Path,
    data: Data,
    plan: Plan | None = None,
    progress: Progress | None = None,
) -> list[Row]:
    """Measure every model (the reference first, once) and score it against the reference."""
    plan = plan or Plan()
    rows = measure_all(paths, reference, plan, progress, lambda p, s: measure(p, data, plan, s))
    for row in rows:
        score(row, rows[0], data.truth)
    return rows


def measure_all(
    paths: Sequence[Path],
    reference: Path,
    plan: Plan,
    progress: Progress | None,
    measure_one: Callable[[Path, Callable[[str], None]], Any],
) -> list[Any]:
    """`measure_one(path, step)` for the reference, then each other model once, with the
    progress bar's steps (one per thread count and one for the pipeline, per model)."""
    ordered = list(dict.fromkeys([Path(reference), *map(Path, paths)]))
    total, done = len(ordered) * (len(plan.threads) + 1), 0

    def step(what: str) -> None:
        nonlocal done
        if progress:
            progress(what, done, total)
        done += 1

    rows = [measure_one(path, step) for path in ordered]
    if progress:
        progress("done", total, total)
    return rows


def remember(rows: Sequence[Measured], model_dir: Path | None = None) -> Path | None:
    """Keep each model's latency and rate beside the fetched models for `camapp model list`."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    found = {
        _file_sha256(row.path): measured.Measurement(
            row.name,
            {threads: round(ms, 2) for threads, ms in row.latency_ms.items()},
            round(row.per_s, 2),
            row.workers,
            when,
        )
        for row in rows
    }
    return measured.record(default_model_dir() if model_dir is None else model_dir, found)


# --- the report ------------------------------------------------------------------------------


def measured_head(rows: Sequence[Measured], rate: str) -> list[str]:
    """The columns every comparison's table starts with (latency at the reference's thread
    counts, then `rate` through the pipeline)."""
    threads = sorted(rows[0].latency_ms)
    return [
        "model", "label set", "input", "MiB", "params M", "MACs M",
        *(f"p50 ms {t} thr" for t in threads), f"{rate} ({rows[0].workers} workers)",
    ]  # fmt: skip


def measured_cells(row: Measured, reference: Measured) -> list[str]:
    """A row's cells under `measured_head`."""
    return [
        row.name, row.labels_set or "—", "x".join(map(str, row.input_size)),
        f"{row.bytes / 2**20:.2f}", _millions(row.params), _millions(row.macs),
        *(f"{row.latency_ms[t]:.2f}" for t in sorted(reference.latency_ms)), f"{row.per_s:.1f}",
    ]  # fmt: skip


def _millions(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e6:.2f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def markdown(rows: Sequence[Row], data: Data) -> str:
    """The comparison as a Markdown table, the reference first."""
    reference = rows[0]
    head = [
        *measured_head(rows, "classif./s"),
        f"agreement with {reference.name}",
        f"where it scores ≥ {SURE}",
        "accuracy",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        accuracy = f"{_share(row.accuracy)} of {row.scored}" if row.scored else "—"
        agreement = "reference" if row is reference else _share(row.agreement)
        sure = f"{_share(row.sure_agreement)} of {row.sure}" if row.sure else "—"
        cells = [*measured_cells(row, reference), agreement, sure, accuracy]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"On {data.summary}, {_cores()} cores. Agreement: share of frames given the same top-1 "
        f"class as the reference (models of its label set only), over all frames and over "
        f"those the reference scores {SURE} or more. Accuracy: top-1 on the labelled frames "
        "whose class the model knows.",
    ]
    return "\n".join(lines) + "\n"


def chart(rows: Sequence[Any], path: Path, answers: str = "top-1") -> Path | None:
    """Accuracy (with labelled frames) and agreement with the reference against one-thread
    latency, one marker per model (a Row, or a detector's row: `answers` = "count");
    None when matplotlib (the `bench` extra) is missing or there is nothing to draw."""
    fig = figure(rows, answers)
    return None if fig is None else charts.save(fig, path, dpi=100)


def figure(rows: Sequence[Any], answers: str = "top-1") -> Any | None:
    """chart()'s matplotlib figure, not saved."""
    plt = charts.pyplot()
    if plt is None:
        return None
    panels = [
        (what, values)
        for what, values in (
            (f"{answers} accuracy on the labelled frames", [row.accuracy for row in rows]),
            (f"{answers} agreement with {rows[0].name}", [row.agreement for row in rows]),
        )
        if any(v is not None for v in values)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 3, 4.5), squeeze=False)
    for ax, (what, values) in zip(axes[0], panels, strict=True):
        for index, (row, value) in enumerate(zip(rows, values, strict=True)):
            if value is not None:
                x = row.latency_ms[min(row.latency_ms)]
                ax.scatter(x, 100 * value, s=30 + row.bytes / 2**15, color=f"C{index}",
                           label=row.name, alpha=0.8)  # fmt: skip
        ax.set_xlabel(f"median invoke time, ms ({min(rows[0].latency_ms)} thread)")
        ax.set_ylabel(f"{what}, %")
        ax.set_ylim(0, 102)  # from 0: a zoomed axis makes a 0.4 % difference look like a gap
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.collections}
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize="small")
    fig.suptitle("camapp model compare (marker size: file size)")
    fig.tight_layout(rect=(0, 0, 1 - 2.8 / fig.get_figwidth(), 1))
    return fig
