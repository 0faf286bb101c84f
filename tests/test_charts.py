"""The charts beside reports: an unwritable path is one line for the user (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camapp import charts
from camapp.errors import ConfigError
from camapp.tools import compare as zoo
from camapp.training import chart as training_chart


def test_a_chart_is_written_as_png(tmp_path: Path) -> None:
    plt = charts.pyplot()
    assert plt is not None  # the dev extra installs matplotlib
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = charts.save(fig, tmp_path / "c.png", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()  # freed: a long training session draws many


def test_an_unwritable_chart_path_is_one_line(tmp_path: Path) -> None:
    plt = charts.pyplot()
    assert plt is not None
    fig, _ = plt.subplots()
    with pytest.raises(ConfigError) as caught:
        charts.save(fig, tmp_path / "missing" / "c.png", dpi=50)
    message = str(caught.value)
    assert message.startswith("cannot write chart ") and "\n" not in message
    assert "No such file or directory" in message
    assert not plt.get_fignums()


# Losses of a real run (the person clip, MobileNetV2, stretch): the validation loss falls to
# 0.001 while the training loss, augmented copies included, wanders between 0.005 and 0.008.
HISTORY = [[0.30, 0.40], [0.36, 0.39], [0.12, 0.14], [0.03, 0.012], [0.0058, 0.0022],
           [0.0051, 0.0011], [0.0060, 0.00106], [0.0083, 0.0015], [0.0040, 0.0015]]  # fmt: skip


def _training_report() -> dict:
    perfect = {"precision": 1.0, "recall": 1.0, "support": 10}
    return {
        "model": "room.tflite",
        "labels": ["empty", "person"],
        "history": HISTORY,
        "kept_epoch": 7,
        "val": {"accuracy": 1.0, "confusion": [[10, 0], [0, 10]],
                "per_class": {"empty": perfect, "person": perfect}},
    }  # fmt: skip


def test_training_chart_shows_small_losses_and_keeps_its_legend_off_the_bars() -> None:
    fig = training_chart.figure(_training_report())
    loss, _, per_class = fig.axes
    assert loss.get_yscale() == "log"  # 0.001 is not drawn as 0 next to 0.008
    assert [line.get_xdata()[0] for line in loss.lines[2:]] == [7]  # the epoch kept
    fig.canvas.draw()
    legend = per_class.get_legend().get_window_extent()
    assert not any(legend.overlaps(bar.get_window_extent()) for bar in per_class.patches)
    charts.save(fig, Path(os.devnull), dpi=10)


def _row(name: str, accuracy: float) -> zoo.Row:
    path, size = Path(f"{name}.tflite"), (224, 224)
    return zoo.Row(name, path, "imagenet", 2**20, 1, 1, size, {1: 5.0}, 100.0, 2, [], [],
                   frozenset(), agreement=accuracy, accuracy=accuracy)  # fmt: skip


def test_compare_chart_axis_starts_at_zero() -> None:
    """93.0 % and 93.4 % are not drawn at the bottom and the top of the chart."""
    fig = zoo.figure([_row("a", 0.930), _row("b", 0.934)])
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 100
    charts.save(fig, Path(os.devnull), dpi=10)
