"""What a training run achieved, as a dict, a Markdown page and a PNG chart.

The numbers a user needs to trust (or distrust) a model they trained themselves:
accuracy on images it never saw, which classes it confuses, the exact images it gets
wrong, and whether the int8 model still agrees with the float head it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from camapp.errors import ConfigError, os_reason, shorten

_WRONG_SHOWN = 50


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall and the confusion matrix (rows: true class)."""
    k = len(labels)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, label in enumerate(labels):
        predicted, actual = confusion[:, i].sum(), confusion[i].sum()
        per_class[label] = {
            "precision": float(confusion[i, i] / predicted) if predicted else None,
            "recall": float(confusion[i, i] / actual) if actual else None,
            "support": int(actual),
        }
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else None,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def wrong_predictions(
    paths: list[str], y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, labels: list[str]
) -> list[dict[str, Any]]:
    """The images a model got wrong, most confident mistakes first."""
    wrong = np.flatnonzero(y_true != y_pred)
    wrong = wrong[np.argsort(-scores[wrong], kind="stable")]
    return [
        {
            "path": paths[i],
            "true": labels[y_true[i]],
            "predicted": labels[y_pred[i]],
            "score": round(float(scores[i]), 3),
        }
        for i in wrong
    ]


def report_paths(model: Path) -> tuple[Path, Path]:
    """MODEL.report.md and MODEL.report.png beside MODEL.tflite."""
    stem = Path(model).with_suffix("")
    return Path(f"{stem}.report.md"), Path(f"{stem}.report.png")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _class_table(metrics: dict[str, Any], labels: list[str]) -> list[str]:
    lines = ["| class | precision | recall | images |", "|---|---|---|---|"]
    for label in labels:
        m = metrics["per_class"][label]
        lines.append(f"| {label} | {_pct(m['precision'])} | {_pct(m['recall'])} | {m['support']} |")
    lines += ["", "Confusion (rows: true class, columns: predicted):", ""]
    lines += ["| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, metrics["confusion"], strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    return lines


def markdown(r: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    s = r["seconds"]
    lines = [
        f"# {Path(r['model']).name}",
        "",
        f"Trained on {r['base']} ({r['crop']} crop, region {r['roi'] or 'whole frame'}), "
        f"{r['images']['train']} training images (+{r['images']['augmented']} augmented), "
        f"{r['images']['val']} validation images; {len(r['images']['unreadable'])} unreadable.",
        "",
        f"- training accuracy: {_pct(r['train']['accuracy'])}",
        f"- validation accuracy (int8 model): {_pct(r['val']['accuracy'])}",
        f"- validation accuracy (float head): {_pct(r['val_float_accuracy'])}",
        f"- int8 model agrees with the float head on {_pct(r['int8_agreement'])} of "
        f"{r['agreement_on']} images",
        f"- {r['epochs']} epochs; {s['total']:.1f} s in all ({s['embed']:.1f} s embedding "
        f"{r['images']['embedded']} images at {r['embed_rate']:.0f}/s on {r['threads']} "
        f"thread(s), {s['fit']:.2f} s fitting)",
        f"- model: {r['model_bytes']} bytes",
        "",
        f"![training chart]({Path(r['chart']).name})"
        if r.get("chart")
        else "(no chart: install matplotlib, `pip install camapp[train]`)",
        "",
        "## Validation by class",
        "",
        *_class_table(r["val"], r["labels"]),
        "",
        f"## Validation images it got wrong ({len(r['wrong'])})",
        "",
    ]
    lines += [
        f"- {w['path']}: predicted {w['predicted']} ({w['score']:.2f}), true {w['true']}"
        for w in r["wrong"][:_WRONG_SHOWN]
    ] or ["none"]
    unreadable = r["images"]["unreadable"]
    if unreadable:
        lines += ["", f"## Images skipped as unreadable ({len(unreadable)})", ""]
        lines += [f"- {path}: {why}" for path, why in list(unreadable.items())[:_WRONG_SHOWN]]
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    try:
        Path(path).write_text(markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report {shorten(path)}: {os_reason(exc)}") from None
    return Path(path)
