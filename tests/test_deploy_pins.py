"""The Pi install's pins (deploy/constraints.txt) against pyproject.toml, and the comparison
`make check-arm64` ends with (deploy/check_arm64.py). The emulated install itself is
`make check-arm64`: minutes of qemu, so not part of this suite."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO, SHARED_MEDIA, run_camapp

# Debian bookworm's python3-numpy (1:1.24.2), which Raspberry Pi OS Bookworm uses and
# deploy/venv.sh keeps: the project's numpy requirement must admit it.
BOOKWORM_NUMPY = Version("1.24.2")


def load_check_arm64():
    spec = importlib.util.spec_from_file_location("check_arm64", REPO / "deploy/check_arm64.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins() -> dict[str, Version]:
    lines = (REPO / "deploy/constraints.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(r.name): Version(str(r.specifier).removeprefix("==")) for r in reqs}


def project_requirements() -> list[Requirement]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [Requirement(r) for r in pyproject["project"]["dependencies"]]


def test_every_pin_is_exact_and_within_the_projects_requirements() -> None:
    pinned = pins()
    assert {"ai-edge-litert", "opencv-python-headless"} <= set(pinned)
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name in pinned:
            assert req.specifier.contains(pinned[name]), (
                f"{name} {pinned[name]} (deploy/constraints.txt) is outside pyproject's "
                f"{req.specifier}: move the pin and run make check-arm64"
            )
        if name == "numpy":
            assert req.specifier.contains(BOOKWORM_NUMPY)
    assert "numpy" not in pinned  # deploy/venv.sh pins it to the system's


@pytest.fixture(scope="module")
def here(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """Real `camapp classify --json` output for two photos, as check-arm64 writes it."""
    photos = [SHARED_MEDIA / "cat.bmp", SHARED_MEDIA / "parrot.jpg"]
    done = run_camapp(["classify", "--json", *map(str, photos)], model_dir)
    assert done.returncode == 0, done.stderr
    out = tmp_path_factory.mktemp("out")
    (out / "host-m.jsonl").write_text(done.stdout)
    return out


def write_arm64(out: Path, change) -> None:
    records = [json.loads(line) for line in (out / "host-m.jsonl").read_text().splitlines()]
    for record in records:
        change(record)
    (out / "arm64-m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def shift(by: float):
    def change(record: dict) -> None:
        record["score"] += by

    return change


def test_compare_passes_equal_labels_within_the_tolerance(here: Path, capsys) -> None:
    write_arm64(here, shift(0.04))
    assert load_check_arm64().compare(here, 0.05, ["m"]) == 0
    assert "2/2 classifications with the same top-1" in capsys.readouterr().out


def test_compare_fails_a_score_beyond_the_tolerance(here: Path, capsys) -> None:
    write_arm64(here, shift(0.06))
    assert load_check_arm64().compare(here, 0.05, ["m"]) == 1
    assert "0/2 classifications" in capsys.readouterr().out


def test_compare_fails_another_top1(here: Path, capsys) -> None:
    def relabel(record: dict) -> None:
        if record["image"].endswith("parrot.jpg"):
            record["label"] = record["top_k"][1]["label"]

    write_arm64(here, relabel)
    assert load_check_arm64().compare(here, 0.05, ["m"]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "parrot.jpg" in failed[0]


def test_opencv_is_quieted_through_opencv_4s_call_too(monkeypatch) -> None:
    """The Pi's OpenCV (4.11, the last for numpy 1) has setLogLevel at the top, not in
    cv2.utils.logging; make check-arm64 runs the real one, this keeps the x86 suite honest."""
    import cv2

    from camapp.capture.opencv_setup import configure_opencv

    levels: list[int] = []
    monkeypatch.delattr(cv2.utils, "logging", raising=False)
    monkeypatch.setattr(cv2, "setLogLevel", levels.append, raising=False)
    configure_opencv()
    assert levels == [2]


@pytest.fixture(scope="module")
def input_bytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """check_arm64.py's `inputs` for two photos and the int8 model, as both sides save them."""
    from tests.conftest import SHARED_MODELS

    out = tmp_path_factory.mktemp("inputs")
    photos = [str(SHARED_MEDIA / "grace_hopper.bmp"), str(SHARED_MEDIA / "parrot.jpg")]
    load_check_arm64().inputs(out / "host-inputs.npz", SHARED_MODELS, ["mobilenet_v2_int8"], photos)
    return out


def write_arm64_inputs(out: Path, key: str | None) -> None:
    import numpy as np

    arrays = dict(np.load(out / "host-inputs.npz"))
    if key is not None:
        arrays[key] = arrays[key].copy()
        arrays[key].flat[1000] ^= 1  # one bit of one byte
    np.savez(out / "arm64-inputs.npz", **arrays)


def test_compare_inputs_passes_identical_bytes(input_bytes: Path, capsys) -> None:
    write_arm64_inputs(input_bytes, None)
    assert load_check_arm64().compare_inputs(input_bytes) == 0
    out = capsys.readouterr().out
    assert "camapp: 0 of 301056 bytes differ, in 0 of 2 arrays" in out
    assert "detector: 0 of 2997600 bytes differ, in 0 of 4 arrays" in out  # 640 and 300
    assert "decoded/grace_hopper.bmp" in out and "cv2/224x224/parrot.jpg" in out


@pytest.mark.parametrize(
    ("key", "size"),
    [
        ("camapp/mobilenet_v2_int8/grace_hopper.bmp", 150528),  # a classifier's input
        ("detector/letterbox640/parrot.jpg", 1228800),  # YOLOv8n's
    ],
)
def test_compare_inputs_fails_one_differing_byte_of_a_model_input(
    input_bytes: Path, capsys, key: str, size: int
) -> None:
    write_arm64_inputs(input_bytes, key)
    assert load_check_arm64().compare_inputs(input_bytes) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and key in failed[0]
    assert f" 1 of {size:8} bytes differ (largest 1)" in failed[0]


def test_compare_inputs_only_reports_the_controls(input_bytes: Path, capsys) -> None:
    write_arm64_inputs(input_bytes, "cv2/224x224/parrot.jpg")  # cv2 may differ: camapp not
    assert load_check_arm64().compare_inputs(input_bytes) == 0
    assert "cv2: 1 of 301056 bytes differ, in 1 of 2 arrays" in capsys.readouterr().out
