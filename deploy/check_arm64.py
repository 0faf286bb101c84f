"""The Python half of deploy/check-arm64.sh.

`imports` (in the emulated root, with the venv's python): every camapp module imports, and
apt's modules compiled against numpy 1.x still work with the numpy the venv sees.
`compare OUT TOLERANCE MODEL...` (on this machine): the root's classifications against this
machine's, photo by photo: the same top-1, scores within the tolerance.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

APT_DIST_PACKAGES = "/usr/lib/python3/dist-packages/"


def imports() -> None:
    """Fails with the first module that does not import, as a Python traceback would."""
    import numpy as np

    import camapp

    # All but __main__, which would run the command line (the check runs `camapp` itself).
    modules = pkgutil.walk_packages(camapp.__path__, "camapp.")
    names = [m.name for m in modules if m.name != "camapp.__main__"]
    for name in names:
        importlib.import_module(name)
    print(f"imported camapp and its {len(names)} modules")
    if not np.__file__.startswith(APT_DIST_PACKAGES):
        sys.exit(f"numpy {np.__version__} comes from {np.__file__}, not from apt")
    # apt's modules built against numpy 1.x, used with arrays made here: simplejpeg stands in
    # for Raspberry Pi OS's (which picamera2 imports), pywt is Debian's own.
    import pywt
    import simplejpeg

    image = np.tile(np.arange(64, dtype=np.uint8)[:, None, None], (1, 48, 3))
    decoded = simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(image, quality=95))
    if decoded.shape != image.shape or np.abs(decoded.astype(int) - image).max() > 8:
        sys.exit("simplejpeg's round trip changed the image")
    approx, _ = pywt.dwt2(image[:, :, 0].astype(float), "haar")
    if approx.shape != (32, 24):
        sys.exit(f"pywt.dwt2 gave shape {approx.shape}")
    print(f"numpy {np.__version__} from apt; simplejpeg and pywt (built for numpy 1.x) work")


def top_k(path: Path) -> dict[str, tuple[str, float]]:
    """Photo name → (top-1 label, score), from `camapp classify --json` lines."""
    results = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        results[Path(record["image"]).name] = (record["label"], record["score"])
    return results


def compare(out: Path, tolerance: float, models: list[str]) -> int:
    """Prints one line a photo; 1 if any top-1 differs or a score is off by more than allowed."""
    worst, failures = 0.0, 0
    for model in models:
        here, arm = top_k(out / f"host-{model}.jsonl"), top_k(out / f"arm64-{model}.jsonl")
        if set(here) != set(arm) or not here:
            print(f"{model}: photos differ: here {sorted(here)}, arm64 {sorted(arm)}")
            return 1
        for photo, (label, score) in sorted(here.items()):
            arm_label, arm_score = arm[photo]
            diff = abs(score - arm_score)
            worst = max(worst, diff)
            bad = arm_label != label or diff > tolerance
            failures += bad
            print(
                f"{'FAIL' if bad else 'ok  '} {model:24} {photo:28} here {label!r} {score:.3f}"
                f"  arm64 {arm_label!r} {arm_score:.3f}  diff {diff:.3f}"
            )
    count = sum(len(top_k(out / f"host-{m}.jsonl")) for m in models)
    print(
        f"{count - failures}/{count} classifications with the same top-1 and scores within "
        f"{tolerance} (largest difference {worst:.3f})"
    )
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["imports"]:
        imports()
        return 0
    if argv[:1] == ["compare"] and len(argv) >= 4:
        return compare(Path(argv[1]), float(argv[2]), argv[3:])
    print("usage: check_arm64.py imports | compare OUT TOLERANCE MODEL...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
