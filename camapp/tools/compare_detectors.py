"""`camapp model compare` for detectors: what a detector is chosen by, measured here.

For each detector: file size, parameters and MACs from its graph, the median invoke time at
1..cores interpreter threads, frames/s through the real pipeline (one camera, one worker per
core, every frame detected), and how often its counts of the tracked labels equal those of a
reference detector, and those of labelled frames (the occupancy dataset's format: a frame
labelled `person` holds one person, one labelled `empty` none). Counts are per frame, before
any tracking: what the model itself sees. The frames, the plan, the pipeline run and the
report's chart are those of the classifiers' comparison (tools/compare.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from camapp.inference import loader
from camapp.inference.timing import median_invoke_ms
from camapp.models.manifest import display_name, load_manifest
from camapp.tflite.modelfile import ModelFile, open_model
from camapp.tools.compare import (
    Data,
    Measured,
    Plan,
    Progress,
    _cores,
    _share,
    measure_all,
    measured_cells,
    measured_head,
    pipeline_rate,
)  # fmt: skip

EMPTY = "empty"  # the occupancy dataset's label of a frame with nothing in it
Counts = dict[str, int]


@dataclass
class DetectorRow(Measured):
    """One detector's figures (per_s: frames detected per second through the pipeline)."""

    counts: list[Counts]  # of the tracked labels, per frame
    agreement: float | None = None  # share of frames counted as the reference counts them
    accuracy: float | None = None  # share of labelled frames counted right
    scored: int = 0  # labelled frames


def _planned(path: Path, threads: int, min_score: float, file: ModelFile) -> loader.DetectorSpec:
    return loader.plan_detector(str(path), threads=threads, min_score=min_score, file=file)


def measure(
    path: Path,
    data: Data,
    plan: Plan,
    track: Sequence[str],
    min_score: float,
    step: Callable[[str], None],
) -> DetectorRow:
    """Every figure of one detector but those against the reference and the labels."""
    name = display_name(path)
    file = open_model(path)
    spec = _planned(path, 1, min_score, file)  # a model that is no detector fails here, first
    info = file.info
    times = {}
    for threads in plan.threads:
        step(f"{name}: latency at {threads} thread{'s' if threads > 1 else ''}")
        planned = spec if threads == 1 else _planned(path, threads, min_score, file)
        detector = loader.load_detector(planned)
        times[threads] = median_invoke_ms(detector, data.frames, plan.repeats)
    step(f"{name}: pipeline, {plan.workers} workers")
    per_s, first = pipeline_rate(spec, data.frames, plan.workers, plan.seconds)
    manifest = load_manifest().get(name)
    _, height, width, _ = info.inputs[0].shape  # NHWC: a detector's input (checked by plan)
    return DetectorRow(
        name, path, manifest.labels_set if manifest else None, path.stat().st_size,
        info.params, info.macs, (height, width), times, per_s, plan.workers,
        [_tracked(answer.counts, track) for answer in first.answers],
    )  # fmt: skip


def _tracked(counts: Counts, track: Sequence[str]) -> Counts:
    return {label: counts.get(label, 0) for label in track}


def truth_counts(label: str | None, track: Sequence[str]) -> Counts | None:
    """The counts a labelled frame stands for: one object of its label, none of the others
    (`empty`: none at all); None for an unlabelled frame or a label that is not tracked."""
    if label is None or (label != EMPTY and label not in track):
        return None
    return {tracked: int(tracked == label) for tracked in track}


def score(row: DetectorRow, reference: DetectorRow, truth: Sequence[str | None]) -> None:
    """A row's count agreement with the reference, and its count accuracy on the labelled
    frames."""
    track = list(row.counts[0]) if row.counts else []
    same = [a == b for a, b in zip(row.counts, reference.counts, strict=True)]
    row.agreement = sum(same) / len(same) if same else None
    wanted = [truth_counts(label, track) for label in truth]
    scored = [got == want for got, want in zip(row.counts, wanted, strict=True) if want]
    row.scored = len(scored)
    row.accuracy = sum(scored) / len(scored) if scored else None


def compare(
    paths: Sequence[Path],
    reference: Path,
    data: Data,
    track: Sequence[str],
    min_score: float,
    plan: Plan | None = None,
    progress: Progress | None = None,
) -> list[DetectorRow]:
    """Measure every detector (the reference first, once) and score it."""
    plan = plan or Plan()
    rows = measure_all(
        paths, reference, plan, progress,
        lambda path, step: measure(path, data, plan, track, min_score, step),
    )  # fmt: skip
    for row in rows:
        score(row, rows[0], data.truth)
    return rows


def markdown(rows: Sequence[DetectorRow], data: Data, min_score: float) -> str:
    """The comparison as a Markdown table, the reference first."""
    reference = rows[0]
    track = ", ".join(reference.counts[0]) if reference.counts else "—"
    head = [*measured_head(rows, "frames/s"), f"counts as {reference.name}", "counts right"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        agreement = "reference" if row is reference else _share(row.agreement)
        accuracy = f"{_share(row.accuracy)} of {row.scored}" if row.scored else "—"
        cells = [*measured_cells(row, reference), agreement, accuracy]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"On {data.summary}, {_cores()} cores; objects scoring {min_score} or more, counted per "
        f"frame (no tracking) for {track}. Counts as the reference: share of frames with every "
        "count equal. Counts right: share of the labelled frames whose label is tracked or "
        f"`{EMPTY}` (one object of the label, none of the others) counted exactly so.",
    ]
    return "\n".join(lines) + "\n"
