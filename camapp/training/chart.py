"""The training report's PNG: loss curves, confusion matrix, per-class precision/recall.

matplotlib is optional (the `train` extra): without it there is no chart, and the
Markdown report says so, rather than failing a training run that otherwise worked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from camapp import charts


def _curves(ax: Any, history: list[list[float | None]], kept: int | None) -> None:
    """Both losses on a log scale: near zero a linear axis shows a validation loss of 0.001 as
    0 and a training loss of 0.008 (augmented copies included) as rising. The epoch whose
    weights the model keeps is marked: early stopping goes on a few epochs past it."""
    epochs = np.arange(1, len(history) + 1)
    ax.plot(epochs, [h[0] for h in history], label="train (with augmented copies)")
    if history and history[0][1] is not None:
        ax.plot(epochs, [h[1] for h in history], label="validation")
    if kept:
        ax.axvline(kept, color="grey", linestyle="--", linewidth=1, label=f"kept: epoch {kept}")
    ax.set(title="loss (log scale)", xlabel="epoch", yscale="log")
    ax.legend(fontsize="small")


def _confusion(ax: Any, confusion: list[list[int]], labels: list[str]) -> None:
    matrix = np.array(confusion)
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set(title="validation confusion", xlabel="predicted", ylabel="true")
    for (i, j), v in np.ndenumerate(matrix):
        color = "white" if v > matrix.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=color)


def _per_class(ax: Any, per_class: dict[str, dict[str, Any]], labels: list[str]) -> None:
    x = np.arange(len(labels))
    for offset, key in ((-0.2, "precision"), (0.2, "recall")):
        values = [per_class[label][key] or 0.0 for label in labels]
        ax.bar(x + offset, values, width=0.4, label=key)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    # Room above the bars for the legend, which must never hide one.
    ax.set(title="validation by class", ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
    ax.legend(loc="upper center", ncol=2, fontsize="small")


def write_chart(report: dict[str, Any], path: Path) -> Path | None:
    """Draw the chart to `path`; None when matplotlib is not installed."""
    fig = figure(report)
    return None if fig is None else charts.save(fig, path, dpi=80)


def figure(report: dict[str, Any]) -> Any | None:
    """write_chart()'s matplotlib figure, not saved; None without matplotlib."""
    plt = charts.pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    _curves(axes[0], report["history"], report.get("kept_epoch"))
    _confusion(axes[1], report["val"]["confusion"], report["labels"])
    _per_class(axes[2], report["val"]["per_class"], report["labels"])
    fig.suptitle(
        f"{Path(report['model']).name}: validation accuracy {report['val']['accuracy']:.1%}"
        if report["val"]["accuracy"] is not None
        else Path(report["model"]).name
    )
    return fig
