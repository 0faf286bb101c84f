"""The charts beside reports: an unwritable path is one line for the user (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from camapp import charts
from camapp.errors import ConfigError


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
