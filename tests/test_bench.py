"""`camapp bench`: the smoke run produces its whole report; bad input is one line and exit 2.

No timing is asserted here: the figures depend on the machine and on whatever else runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from camapp.bench.harness import COLUMNS
from tests.conftest import SHARED_MEDIA, run_camapp
from tests.test_errors import one_line_error

ROWS = ("limit 1x1", "naive", "camapp", "camapp, frames in memory", "camapp real-time")


def test_quick_bench_writes_the_table_with_every_column(model_dir: Path, tmp_path: Path) -> None:
    """Two rounds (one bench run for both checks: a run takes a minute)."""
    out = tmp_path / "results"
    clip = SHARED_MEDIA / "car-detection.mp4"
    args = ["bench", "--quick", "--rounds", "2", "--clip", str(clip), "--out", str(out)]
    proc = run_camapp(args, model_dir, timeout=300)  # a dozen camapp runs, each starting up
    assert proc.returncode == 0, proc.stderr
    assert "round 2/2" in proc.stderr
    summary = next(line for line in proc.stdout.splitlines() if "medians of 2 rounds" in line)
    assert summary.count("x ideal /") == 2, summary
    assert "Traceback" not in proc.stderr
    assert "[1/" in proc.stderr  # progress is shown while it runs
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| run |"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(COLUMNS)
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    for name in ROWS:
        cells = [c.strip() for c in table[name].strip("|").split("|")]
        assert len(cells) == len(COLUMNS) and all(cells), table[name]
    for name in ("camapp", "camapp real-time"):
        assert "—" not in table[name], table[name]  # every latency, RSS and start-up figure
    assert "ideal" in proc.stdout and "| target | measured | met |" in proc.stdout
    # A few seconds say nothing of growth over ten minutes: the report says so.
    growth = next(line for line in lines if line.startswith("| RSS growth < 5 MB"))
    assert growth.endswith("| not measured (run --soak 600) |"), growth
    assert any(line.startswith("| frames in memory ≥ 0.93 x bare") for line in lines)
    # The fixed cost of both camapp rows, and the GIL each classification holds (py-spy is in
    # the bench extra, so it is measured).
    fixed = next(line for line in lines if line.startswith("- **fixed cost**"))
    assert len(re.findall(r"\*\*-?\d+\.\d{3} ms\*\*", fixed)) == 2, fixed
    gil = next(line for line in lines if "GIL held per classification" in line)
    held = float(re.search(r"\*\*(\d+\.\d+) ms\*\*", gil).group(1))  # type: ignore[union-attr]
    assert held > 0, gil
    # 1, 2, 4 and 8 cameras in one process, each camera's share given; every one classified.
    for count in (1, 2, 4, 8):
        cells = [c.strip() for c in table[str(count)].strip("|").split("|")]
        shares = [float(share) for share in cells[3].split()]
        assert len(shares) == count and min(shares) > 0, table[str(count)]
    assert any(line.startswith("| 8 cameras within 10 % of equal shares") for line in lines)
    for name in ("camapp", "camapp real-time"):  # RSS split into its parts, read together
        memory = next(line for line in lines if line.startswith(f"- `{name}` memory:"))
        total, anon, files = (int(n) for n in re.findall(r"\d+", memory))
        assert anon > 0 and files > 0 and abs(anon + files - total) <= 2, memory
    assert (out / "bench.md").read_text() == proc.stdout
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "bench.json").is_file()


def test_missing_clip(model_dir: Path, tmp_path: Path) -> None:
    proc = run_camapp(["bench", "--quick", "--clip", str(tmp_path / "nope.mp4")], model_dir)
    one_line_error(proc, 2, "clip not found", "nope.mp4")


def test_bad_option(model_dir: Path) -> None:
    one_line_error(run_camapp(["bench", "--workers", "0"], model_dir), 2, "--workers")
    one_line_error(run_camapp(["bench", "--soak", "-5"], model_dir), 2, "--soak")
    one_line_error(run_camapp(["bench", "--rounds", "0"], model_dir), 2, "--rounds")
