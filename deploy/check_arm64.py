"""The Python half of deploy/check-arm64.sh.

`imports` (in the emulated root, with the venv's python): every camapp module imports, and
apt's modules compiled against numpy 1.x still work with the numpy the venv sees.
`inputs FILE MODEL_DIR MODEL... -- PHOTO...` (in the root and here): each photo as decoded, as
cv2.resize's INTER_LINEAR makes it model-sized (the control), as camapp's preprocessing
gives it to each model, and as a detector places it (YOLOv8n's 640x640 letterbox, the SSD's
300x300 stretch), saved to FILE (.npz).
`compare OUT TOLERANCE MODEL...` (on this machine): each of the root's installs (`SIDES`)
against this machine, photo by photo: the same top-1, scores within the tolerance; and the
model input bytes: camapp's must be identical, byte for byte (issue 20: a near tie's top-1
flipped when OpenCV's arm64 bilinear rounded otherwise).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

APT_DIST_PACKAGES = "/usr/lib/python3/dist-packages/"
# The detectors' inputs, (size, letterboxed): YOLOv8n's and the SSD's.
DETECTOR_INPUTS = ((640, True), (300, False))
# The arrays that are camapp's own model inputs: any differing byte fails the check.
MODEL_INPUTS = ("camapp", "detector")
# The root's installs compared with this machine, as check-arm64.sh names their output.
SIDES = {
    "arm64": "installed by deploy/venv.sh (apt's numpy 1.24, the pinned OpenCV 4.11)",
    "plain": "a plain pip install (numpy 2, the newest OpenCV)",
}


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


def inputs(path: Path, model_dir: Path, models: list[str], photos: list[str]) -> None:
    """Saves every photo's bytes at each step to the model: decoded, cv2-resized, camapp's."""
    import cv2
    import numpy as np

    from camapp.capture.imagefile import read_image
    from camapp.devices import Devices
    from camapp.inference import backend
    from camapp.inference.preprocess import Preprocessor, region
    from camapp.models import resolve_model

    decoded = {Path(photo).name: read_image(Path(photo)) for photo in photos}  # once each
    arrays: dict[str, object] = {f"decoded/{name}": image for name, image in decoded.items()}
    resized_by: Counter[str | None] = Counter()
    for model in models:
        model_path = resolve_model(model, model_dir)
        spec = backend.create(
            "litert", model_path, backend.configure("litert", {}), Devices()
        ).input
        for name, image in decoded.items():
            preprocess = Preprocessor(spec)
            rows, cols = region(image.shape, (spec.width, spec.height))
            arrays[f"cv2/{spec.width}x{spec.height}/{name}"] = cv2.resize(
                image[rows, cols], (spec.width, spec.height), interpolation=cv2.INTER_LINEAR
            )
            out = np.empty((spec.height, spec.width, 3), spec.dtype)
            preprocess(image, True, out)
            arrays[f"camapp/{model}/{name}"] = out
            resizer = preprocess.resizer
            resized_by[resizer and ("OpenCV" if resizer.opencv else "camapp's numpy")] += 1
    for name, image in decoded.items():
        arrays.update(detector_inputs(name, image))
    np.savez(path, **arrays)
    ways = ", ".join(
        f"{count} by {way or 'nothing (model-sized)'}" for way, count in resized_by.items()
    )
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}: model inputs resized {ways}")
    print(f"saved {len(arrays)} arrays to {path}")


def detector_inputs(name: str, image: np.ndarray) -> dict[str, object]:
    """A decoded photo as `Detector.detect` places it into each detector's input (before the
    channel order and quantization, which the classifiers' inputs already cover)."""
    import numpy as np

    from camapp.detect.letterbox import fit, place
    from camapp.inference.preprocess import region

    arrays: dict[str, object] = {}
    for size, letterbox in DETECTOR_INPUTS:
        rows, cols = region(image.shape, (size, size), "stretch")
        placed = np.empty((size, size, 3), np.uint8)
        place(image[rows, cols], fit(image.shape, (rows, cols), (size, size), letterbox), placed)
        kind = "letterbox" if letterbox else "stretch"
        arrays[f"detector/{kind}{size}/{name}"] = placed
    return arrays


def compare_inputs(out: Path, side: str = "arm64") -> int:
    """Prints the differing bytes of each array; 1 if camapp's model inputs (a classifier's
    or a detector's) differ at all, or are missing."""
    import numpy as np

    here, arm = np.load(out / "host-inputs.npz"), np.load(out / f"{side}-inputs.npz")
    if set(here.files) != set(arm.files):
        print(f"input arrays differ: here {sorted(here.files)}, {side} {sorted(arm.files)}")
        return 1
    totals: dict[str, list[int]] = {}
    for key in sorted(here.files):
        a, b = here[key], arm[key]
        differ = int((a != b).sum()) if a.shape == b.shape else a.size
        step = key.split("/")[0]
        total = totals.setdefault(step, [0, 0, 0])
        total[0] += differ
        total[1] += a.size
        total[2] += differ > 0
        worst = int(np.abs(a.astype(int) - b.astype(int)).max()) if a.shape == b.shape else -1
        print(
            f"{'FAIL' if differ and step in MODEL_INPUTS else 'ok  '} {key:56} {differ:7} of "
            f"{a.size:8} bytes differ (largest {worst})"
        )
    for step, (differ, size, arrays) in totals.items():
        print(
            f"{step}: {differ} of {size} bytes differ, in {arrays} of "
            f"{sum(k.startswith(step + '/') for k in here.files)} arrays"
        )
    return 1 if any(totals.get(step, [1])[0] for step in MODEL_INPUTS) else 0


def top_k(path: Path) -> dict[str, tuple[str, float]]:
    """Photo name → (top-1 label, score), from `camapp classify --json` lines."""
    results = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        results[Path(record["image"]).name] = (record["label"], record["score"])
    return results


def compare(out: Path, tolerance: float, models: list[str], side: str = "arm64") -> int:
    """Prints one line a photo; 1 if any top-1 differs or a score is off by more than allowed."""
    worst, failures = 0.0, 0
    for model in models:
        here, arm = top_k(out / f"host-{model}.jsonl"), top_k(out / f"{side}-{model}.jsonl")
        if set(here) != set(arm) or not here:
            print(f"{model}: photos differ: here {sorted(here)}, {side} {sorted(arm)}")
            return 1
        for photo, (label, score) in sorted(here.items()):
            arm_label, arm_score = arm[photo]
            diff = abs(score - arm_score)
            worst = max(worst, diff)
            bad = arm_label != label or diff > tolerance
            failures += bad
            print(
                f"{'FAIL' if bad else 'ok  '} {model:24} {photo:28} here {label!r} {score:.3f}"
                f"  {side} {arm_label!r} {arm_score:.3f}  diff {diff:.3f}"
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
    if argv[:1] == ["inputs"] and "--" in argv[4:]:
        split = argv.index("--")
        inputs(Path(argv[1]), Path(argv[2]), argv[3:split], argv[split + 1 :])
        return 0
    if argv[:1] == ["compare"] and len(argv) >= 4:
        out, failed = Path(argv[1]), 0
        for side, what in SIDES.items():
            print(f"== {side}: {what}")
            failed |= compare(out, float(argv[2]), argv[3:], side)
            failed |= compare_inputs(out, side)
        return failed
    print(
        "usage: check_arm64.py imports | inputs FILE MODEL_DIR MODEL... -- PHOTO... | "
        "compare OUT TOLERANCE MODEL...",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
