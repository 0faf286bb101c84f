"""Teach a model your scene: DATASET/<label>/ images in, one int8 .tflite out.

Cut the base at its embedding, embed every image (plus augmented copies) on all cores at
low priority, fit a softmax head with early stopping, quantize and graft it, then report
on the validation images. No TensorFlow: it runs on the camera itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from camapp import __version__, models
from camapp.config.training import TrainSettings
from camapp.datasets import Sample, scan
from camapp.errors import ConfigError, shorten
from camapp.training import graft
from camapp.training.chart import write_chart
from camapp.training.check import unprintable
from camapp.training.cut import CutModel, cut_classifier
from camapp.training.embed import Job, Progress, extract
from camapp.training.head import Head, one_hot, train_head
from camapp.training.report import (
    classification_metrics,
    report_paths,
    write_markdown,
    wrong_predictions,
)


@dataclass(frozen=True)
class _Split:
    train: list[Sample]
    val: list[Sample]
    labels: list[str]


@dataclass(frozen=True)
class _Embedded:
    """Features of the readable images: originals + augmented copies to fit on, and the
    validation images' raw (quantized) embeddings for the int8 head."""

    x: np.ndarray
    y: np.ndarray
    originals: np.ndarray  # mask over x: not an augmented copy
    val_raw: np.ndarray
    val_y: np.ndarray
    val_paths: list[str]
    unreadable: dict[str, str]  # path: why it was refused (augmented copies left out)
    seconds: float
    rate: float
    threads: int


def _split(dataset: Path, s: TrainSettings) -> _Split:
    """Hold out `val_fraction` of each class at random (seeded), or use `val_dir`."""
    samples = scan(dataset)
    labels = sorted({x.label for x in samples})
    if len(labels) < 2:
        raise ConfigError(
            f"dataset {shorten(dataset)} needs images in at least 2 class folders, "
            f"found {len(labels)} (run the dataset check for details)"
        )
    if odd := unprintable(labels):  # at once, not after every image was embedded
        raise ConfigError(f"{odd} (in {shorten(dataset)})")
    if s.val_dir is not None:
        val = scan(Path(s.val_dir))
        if not val:  # else it trained on, reporting validation "n/a" as if asked for none
            raise ConfigError(f"validation dataset {shorten(s.val_dir)} has no images")
        strange = sorted({x.label for x in val} - set(labels))
        if strange:
            raise ConfigError(
                f"validation classes not in the dataset: {shorten(', '.join(strange))}"
            )
        return _Split(samples, val, labels)
    rng = np.random.default_rng(s.seed)
    train, held = [], []
    for label in labels:
        group = [x for x in samples if x.label == label]
        order = rng.permutation(len(group))
        n_val = min(round(len(group) * s.val_fraction), len(group) - 1)
        held += [group[i] for i in sorted(order[:n_val])]
        train += [group[i] for i in sorted(order[n_val:])]
    return _Split(train, held, labels)


def _embed(split: _Split, cut: CutModel, s: TrainSettings, progress: Progress | None) -> _Embedded:
    """Embed originals, augmented copies and validation images in one pass."""
    copies = [(x, s.seed * 1_000_003 + k) for k, x in enumerate(split.train * s.augment)]
    items = split.train + [x for x, _ in copies] + split.val
    jobs = [Job(x.path) for x in split.train]
    jobs += [Job(x.path, seed) for x, seed in copies] + [Job(x.path) for x in split.val]
    ex = extract(cut.model, jobs, len(jobs), s.crop, s.roi, s.threads, progress, s.low_priority)
    role = np.repeat([0, 1, 2], [len(split.train), len(copies), len(split.val)])
    index = {label: i for i, label in enumerate(split.labels)}
    y = np.array([index[x.label] for x in items], int)
    fit, val = ex.ok & (role < 2), ex.ok & (role == 2)
    return _Embedded(
        x=cut.dequantize(ex.raw[fit]),
        y=y[fit],
        originals=role[fit] == 0,
        val_raw=ex.raw[val],
        val_y=y[val],
        val_paths=[str(items[i].path) for i in np.flatnonzero(val)],
        unreadable={
            str(items[i].path): why for i, why in sorted(ex.refused.items()) if role[i] != 1
        },
        seconds=ex.seconds,
        rate=ex.rate,
        threads=ex.threads,
    )


def _fit(e: _Embedded, cut: CutModel, labels: list[str], s: TrainSettings) -> Head:
    """Fit the head; a class whose every image was unreadable cannot be learnt."""
    empty = [label for i, label in enumerate(labels) if not (e.y[e.originals] == i).any()]
    if empty:
        raise ConfigError(f"no readable training image in class(es): {shorten(', '.join(empty))}")
    k = len(labels)
    x_val = cut.dequantize(e.val_raw)
    return train_head(e.x, one_hot(e.y, k), x_val, one_hot(e.val_y, k), s.head)


def _meta(cut: CutModel, labels: list[str], s: TrainSettings) -> dict[str, Any]:
    """What inference must repeat (crop, region) and where the model came from."""
    return {
        "labels": labels,
        "crop": s.crop,
        "roi": list(s.roi) if s.roi else None,
        "base": cut.base,
        "embedding_dim": cut.dim,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "camapp_version": __version__,
    }


def _evaluate(
    e: _Embedded, cut: CutModel, head: Head, q: graft.QuantizedHead, labels: list[str]
) -> dict[str, Any]:
    """Accuracy of the float head on the training images, of the int8 model on validation,
    and how often the int8 model agrees with the float head (on training images if there
    is no validation set)."""
    x_orig, y_orig = e.x[e.originals], e.y[e.originals]
    train_pred = head.logits(x_orig).argmax(axis=1)
    scores = graft.int8_scores(cut, q, e.val_raw)
    val_pred, val_float = (
        scores.argmax(axis=1),
        head.logits(cut.dequantize(e.val_raw)).argmax(axis=1),
    )
    if len(e.val_raw):
        agreement, on = float((val_pred == val_float).mean()), len(val_pred)
    else:
        raw = np.round(x_orig / cut.scale + cut.zero_point).astype(cut.dtype)
        agreement, on = (
            float((graft.int8_scores(cut, q, raw).argmax(axis=1) == train_pred).mean()),
            len(raw),
        )
    return {
        "train": classification_metrics(y_orig, train_pred, labels),
        "val": classification_metrics(e.val_y, val_pred, labels),
        "val_float_accuracy": float((val_float == e.val_y).mean()) if len(e.val_y) else None,
        "int8_agreement": agreement,
        "agreement_on": on,
        "wrong": wrong_predictions(
            e.val_paths, e.val_y, val_pred, scores.max(axis=1, initial=0), labels
        ),
    }


def train(
    dataset: Path,
    out: Path,
    settings: TrainSettings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train a head on DATASET/<label>/ images, write OUT (.tflite, labels embedded) and its
    OUT.report.md / OUT.report.png; return the report."""
    s = settings or TrainSettings()
    say = progress or (lambda _stage, _done, _total: None)
    start = time.perf_counter()
    out = graft.out_folder(out)
    split = _split(Path(dataset), s)
    cut = cut_classifier(models.resolve_model(s.base))
    emb = _embed(split, cut, s, progress)
    say("fit", 0, 1)
    fit_start = time.perf_counter()
    head = _fit(emb, cut, split.labels, s)
    fit_seconds = time.perf_counter() - fit_start
    q = graft.quantize_head(head, cut, emb.x)
    size = graft.write_model(
        Path(out), graft.grafted_model(cut, q), split.labels, _meta(cut, split.labels, s)
    )
    say("report", 0, 1)
    report = {
        "model": str(out),
        "base": cut.base,
        "labels": split.labels,
        "crop": s.crop,
        "roi": list(s.roi) if s.roi else None,
        "images": {
            "train": int(emb.originals.sum()),
            "augmented": int((~emb.originals).sum()),
            "val": len(emb.val_y),
            "embedded": int(len(emb.x) + len(emb.val_y)),
            "unreadable": emb.unreadable,
        },
        **_evaluate(emb, cut, head, q, split.labels),
        "epochs": head.epochs,
        "kept_epoch": head.kept,
        "history": [list(h) for h in head.history],
        "model_bytes": size,
        "embed_rate": emb.rate,
        "threads": emb.threads,
        "seconds": {"embed": emb.seconds, "fit": fit_seconds, "total": time.perf_counter() - start},
    }
    _write_reports(report, Path(out))
    return report


def _write_reports(report: dict[str, Any], out: Path) -> None:
    md, png = report_paths(out)
    chart = write_chart(report, png)
    report["chart"] = str(chart) if chart else None
    report["report"] = str(write_markdown(report, md))
