"""Distillation without labels: a small model learns to answer like a big one on your scene.

The teacher (any classifier with labels) labels frames of a clip with its probabilities;
the classes it actually uses there (each the top answer on at least `min_share` of the
frames, the rest pooled as "(other)") become the student's outputs. A head on a much
smaller base is fitted to those soft targets, so the camera can run the student at a
fraction of the cost. Agreement with the teacher is measured on the clip's last frames,
which neither model trained on: before (the student base's own head, its answers mapped
to the same classes by label name) and after.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from camapp import __version__, models
from camapp.config.training import DistillSettings, HeadSettings
from camapp.errors import ConfigError, os_reason, shorten
from camapp.tflite import graph
from camapp.tflite.modelfile import open_model
from camapp.training import graft
from camapp.training.clip import clip_frames, clip_length
from camapp.training.cut import cut_classifier
from camapp.training.embed import (
    Job,
    Progress,
    bare_rate,
    dequantize_output,
    extract,
    load_model_bytes,
)
from camapp.training.head import Head, train_head

OTHER = "(other)"


def _run(
    model: bytes,
    clip: Path,
    s: DistillSettings,
    progress: Progress | None,
    stage: str,
    first: int = 0,
) -> np.ndarray:
    """Raw outputs of `model` on every `stride`-th frame of the clip from frame `first`."""
    total = len(range(first, clip_length(clip), s.stride))
    jobs = (Job(frame) for _, frame in clip_frames(clip, s.stride, first))
    ex = extract(model, jobs, total, s.crop, s.roi, s.threads, progress, s.low_priority, stage)
    return ex.raw


def _teacher(path: Path) -> tuple[bytes, list[str]]:
    """The teacher's bytes, read once, and its labels aligned to its outputs (some label
    files add a background). One that is no TFLite image classifier with labels is refused
    before the clip is run through it: a corrupt file was an internal error, a detector or a
    segmentation model was refused only after the whole clip's inference, for its outputs
    or labels, an Edge TPU build was an internal error."""
    file = open_model(path)
    if file.info.edgetpu:  # its one custom op runs on a Coral only; teachers run on the CPU
        raise ConfigError(f"teacher {shorten(path)} is compiled for the Edge TPU: use a CPU model")
    if file.kind != graph.Kind.CLASSIFIER:
        raise ConfigError(f"teacher {shorten(path)} is not an image classifier: {file.why}")
    classes = file.classifier(()).classes
    labels = models.read_labels(file)
    if len(labels) - classes not in (0, 1):
        raise ConfigError(
            f"teacher {path.name[:80]} has {classes} outputs but {len(labels)} labels"
        )
    return bytes(file.data), labels[len(labels) - classes :]


def _classes(probs: np.ndarray, labels: list[str], min_share: float) -> list[int]:
    """Teacher classes that top at least `min_share` of the frames, most frequent first."""
    counts = np.bincount(probs.argmax(axis=1), minlength=len(labels))
    kept = [
        int(i) for i in np.argsort(-counts, kind="stable") if counts[i] >= min_share * len(probs)
    ]
    if not kept:
        raise ConfigError("the teacher answers too differently on every frame to pick classes")
    return kept


def _targets(probs: np.ndarray, kept: list[int]) -> np.ndarray:
    """Soft targets over the kept classes, plus (other) if any is left out; rows sum to 1.

    (other) stands for the teacher's best class outside the kept ones (not their summed
    mass, which would outweigh every kept class when the teacher is unsure), so the
    target's top class is always the teacher's top answer, mapped.
    """
    rest = np.ones(probs.shape[1], bool)
    rest[kept] = False
    other = probs[:, rest].max(axis=1, keepdims=True) if rest.any() else probs[:, :0]
    t = np.hstack([probs[:, kept], other])
    return t / np.maximum(t.sum(axis=1, keepdims=True), 1e-9)


def _mapped(top: np.ndarray, labels: list[str], names: list[str]) -> np.ndarray:
    """Each top-1 index (into `labels`) as an index into `names`: (other) when it is not
    there, or -1 (matching nothing) when there is no (other)."""
    where = {name: i for i, name in enumerate(names)}
    other = where.get(OTHER, -1)
    return np.array([where.get(labels[i], other) for i in top], int)


def _fit(x: np.ndarray, targets: np.ndarray, settings: HeadSettings) -> Head:
    """Fit on the first 85% of the training frames, stop early on the last 15% (in time
    order, so the stop is judged on frames unlike the ones fitted)."""
    cut_at = max(1, int(len(x) * 0.85))
    return train_head(x[:cut_at], targets[:cut_at], x[cut_at:], targets[cut_at:], settings)


def _before(
    student: Path, clip: Path, s: DistillSettings, first: int, names: list[str], want: np.ndarray
) -> float | None:
    """Agreement of the student base's own head with the teacher, mapped by label name;
    None when the student base has no labels, or none of the teacher's classes."""
    try:
        labels = models.read_labels(student)
    except ConfigError:
        return None
    if not (set(names) - {OTHER}) & set(labels):
        return None  # no class in common: nothing to compare
    model = load_model_bytes(student)
    raw = _run(model, clip, s, None, "student-before", first)[: len(want)]
    offset = len(labels) - raw.shape[1]
    if offset not in (0, 1) or len(raw) != len(want):
        return None
    top = raw.argmax(axis=1) + offset
    return float((_mapped(top, labels, names) == want).mean())


def distill(
    clip: Path,
    out: Path,
    teacher: str,
    student: str,
    settings: DistillSettings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Teach a head on `student` (a small classifier, cut at its embedding) to answer like
    `teacher` on `clip`; write OUT (.tflite, labels embedded) and OUT.report.md."""
    s = settings or DistillSettings()
    out = graft.out_folder(out)
    start = time.perf_counter()
    teacher_path, student_path = models.resolve_model(teacher), models.resolve_model(student)
    (teacher_model, t_labels), cut = _teacher(teacher_path), cut_classifier(student_path)
    probs = dequantize_output(teacher_model, _run(teacher_model, clip, s, progress, "teacher"))
    raw = _run(cut.model, clip, s, progress, "student")
    n = min(len(probs), len(raw))
    n_train = round(n * (1 - s.holdout))
    if n_train < 20 or n - n_train < 10:
        raise ConfigError(f"clip too short: {n} frames at stride {s.stride} (need 30 or more)")
    kept = _classes(probs[:n_train], t_labels, s.min_share)
    names = [t_labels[i] for i in kept] + ([OTHER] if len(kept) < len(t_labels) else [])
    x = cut.dequantize(raw[:n_train])
    head = _fit(x, _targets(probs[:n_train], kept), s.head)
    q = graft.quantize_head(head, cut, x)
    student_model = graft.grafted_model(cut, q)
    meta = _meta(cut.base, teacher_path.name, names, s)
    size = graft.write_model(Path(out), student_model, names, meta)
    want = _mapped(probs[n_train:n].argmax(axis=1), t_labels, names)
    after = graft.int8_scores(cut, q, raw[n_train:n]).argmax(axis=1)
    teacher_rate, student_rate = bare_rate(teacher_model), bare_rate(student_model)
    report = {
        "model": str(out),
        "teacher": teacher_path.name,
        "student_base": cut.base,
        "classes": names,
        "frames": {"train": n_train, "holdout": n - n_train, "stride": s.stride},
        "agreement_before": _before(student_path, clip, s, n_train * s.stride, names, want),
        "agreement_after": float((after == want).mean()),
        "teacher_rate": teacher_rate,
        "student_rate": student_rate,
        "speedup": student_rate / teacher_rate,
        "model_bytes": size,
        "epochs": head.epochs,
        "kept_epoch": head.kept,
        "seconds": time.perf_counter() - start,
    }
    _write_markdown(report)
    return report


def _meta(base: str, teacher: str, names: list[str], s: DistillSettings) -> dict[str, Any]:
    """What inference must repeat (crop, region), and where the model came from."""
    return {
        "labels": names,
        "crop": s.crop,
        "roi": list(s.roi) if s.roi else None,
        "base": base,
        "distilled_from": teacher,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "camapp_version": __version__,
    }


def _write_markdown(r: dict[str, Any]) -> None:
    """MODEL.report.md: the before/after agreement and the speed-up, in words."""
    before = r["agreement_before"]
    lines = [
        f"# {Path(r['model']).name}",
        "",
        f"Distilled from {r['teacher']} onto {r['student_base']}, without labels: "
        f"{r['frames']['train']} training frames, {r['frames']['holdout']} held-out frames "
        f"(every {r['frames']['stride']}th frame of the clip).",
        "",
        f"- classes: {', '.join(r['classes'])}",
        "- agreement with the teacher on held-out frames: before "
        f"{'n/a' if before is None else f'{before:.1%}'} (the base's own head, mapped by "
        f"label), after {r['agreement_after']:.1%}",
        f"- speed: teacher {r['teacher_rate']:.0f}/s, student {r['student_rate']:.0f}/s on one "
        f"thread: {r['speedup']:.1f}x faster",
        f"- model: {r['model_bytes']} bytes; {r['epochs']} epochs; {r['seconds']:.1f} s in all",
    ]
    path = Path(f"{Path(r['model']).with_suffix('')}.report.md")
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report {shorten(path)}: {os_reason(exc)}") from None
    r["report"] = str(path)
