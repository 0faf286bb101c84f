"""Peak memory of the commands that read a user's images, handed a PNG that decodes to
30000x30000 (issue 20: under a megabyte on disk, 2.7 GB decoded as colour).

Each command runs as a child process (`python -m camapp ...`) on a small dataset of real photos
(two classes, 11 resized copies each), once as it is and once with the big PNG added to a
class folder; its peak RSS comes from the kernel (wait4's ru_maxrss), its exit code and last
line are shown. Before the one image reader, these took 10.7 GB (`train`), 5.4 GB (`model
compare --images`) and 1.0 GB (`dataset check`); now the PNG is refused from its header.

    .venv/bin/python benchmarks/image_caps.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2
from paths import MEDIA, REPO, SHARED

from tests.image_files import black_png

SMALL = SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite"
SIDE = 30_000


def _dataset(root: Path) -> Path:
    for label, photo in (("cats", "cat.bmp"), ("people", "grace_hopper.bmp")):
        (root / label).mkdir(parents=True)
        image = cv2.imread(str(MEDIA / photo))
        for i in range(11):
            cv2.imwrite(str(root / label / f"{i}.png"), cv2.resize(image, (90 + 7 * i, 96)))
    return root


def _run(args: list[str]) -> tuple[int, float, float, str]:
    """Exit code, peak RSS (MB), seconds and the line of its output naming huge.png (the
    train report's, for `train`) of `camapp args`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "camapp", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    report = (
        Path(args[args.index("--out") + 1]).with_suffix(".report.md") if "--out" in args else None
    )
    if report is not None and report.is_file():
        out += report.read_text()
    named = [line for line in out.splitlines() if "huge.png" in line] or ["—"]
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, seconds, named[0][-120:]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = _dataset(Path(tmp) / "ds")
        commands = {
            "dataset check": ["dataset", "check", str(root)],
            "train": ["train", str(root), "--out", f"{tmp}/m.tflite", "--base", str(SMALL),
                      "--augment", "0"],
            "model compare --images": ["model", "compare", str(SMALL), "--images",
                                       str(root / "cats"), "--seconds", "0.5", "--chart",
                                       f"{tmp}/c.png"],
            "classify": ["classify", "--model", str(SMALL), str(root / "cats" / "0.png")],
        }  # fmt: skip
        before = {name: _run(args) for name, args in commands.items()}
        start = time.perf_counter()
        big = black_png(root / "cats" / "huge.png", SIDE, SIDE)
        made = time.perf_counter() - start
        print(f"{big.name}: {SIDE}x{SIDE}, {big.stat().st_size / 2**20:.2f} MiB on disk, "
              f"made in {made:.1f} s\n")  # fmt: skip
        commands["classify"][-1] = str(big)
        print("| command | without the PNG: exit, peak RSS MB, s | with it: exit, peak RSS MB, s "
              "| what it says of huge.png |\n|---|---|---|---|")  # fmt: skip
        for name, args in commands.items():
            after = _run(args)
            a, b = before[name], after
            print(f"| `{name}` | {a[0]}, {a[1]:.0f}, {a[2]:.1f} | {b[0]}, {b[1]:.0f}, {b[2]:.1f} "
                  f"| {b[3]} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
