"""The one image reader: sizes from headers, refusals before decoding, and every command that
reads a user's images (classify, dataset check, train, model compare) living with them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp.capture.imagefile import (
    MAX_IMAGE_BYTES,
    UnreadableImage,
    image_size,
    read_image,
)
from camapp.errors import CamappError
from camapp.training.check import check_dataset, format_check
from camapp.training.embed import Job, extract, load_model_bytes
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp
from tests.image_files import black_png, bmp_claiming, jpeg_claiming, sparse_file

SMALL = SHARED_MODELS / "mobilenet_v1_0.25_128_quant.tflite"


@pytest.mark.parametrize(
    "name", ["grace_hopper.bmp", "cat.bmp", "chelsea.png", "coffee.png", "parrot.jpg", "owl.jpg"]
)
def test_header_size_is_the_decoded_size(name: str) -> None:
    data = (SHARED_MEDIA / name).read_bytes()
    height, width = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert image_size(data) == (width, height)
    assert read_image(SHARED_MEDIA / name).shape == (height, width, 3)


def _hostile(tmp_path: Path, kind: str) -> Path:
    """One hostile file named like an image."""
    path = tmp_path / f"{kind}.png"
    if kind == "claims-100000":  # cv2.imdecode raises on it
        return black_png(path, 100_000, 100_000, rows=1)
    if kind == "decodes-to-7000":  # a valid PNG of 49 MP: 147 MB decoded
        return black_png(path, 7000, 7000)
    if kind == "jpeg-60000":
        return jpeg_claiming(tmp_path / "big.jpg", 60_000, 60_000)
    if kind == "bmp-100000":
        return bmp_claiming(tmp_path / "big.bmp", 100_000, -100_000)
    if kind == "link-to-3gib":  # read whole before: a symlinked .jpg to a huge file
        (tmp_path / "link.jpg").symlink_to(sparse_file(tmp_path / "huge.bin", 3 << 30))
        return tmp_path / "link.jpg"
    if kind == "fifo":  # reading it would wait forever
        os.mkfifo(tmp_path / "fifo.jpg")
        return tmp_path / "fifo.jpg"
    data = {"empty": b"", "garbage": b"not an image at all", "cut-header": b"\x89PNG\r\n"}
    path.write_bytes(data[kind])
    return path


REFUSALS = {
    "claims-100000": "100000x100000 pixels, over the 40 megapixel cap",
    "decodes-to-7000": "7000x7000 pixels, over the 40 megapixel cap",
    "jpeg-60000": "60000x60000 pixels, over the 40 megapixel cap",
    "bmp-100000": "100000x100000 pixels, over the 40 megapixel cap",
    "link-to-3gib": f"3072 MiB, over the {MAX_IMAGE_BYTES >> 20} MiB cap",
    "fifo": "not a regular file",
    "empty": "empty file",
    "garbage": "not a PNG, JPEG or BMP file",
    "cut-header": "not a PNG, JPEG or BMP file",
}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_hostile_files_are_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    path = _hostile(tmp_path, kind)
    with pytest.raises(UnreadableImage) as caught:
        read_image(path)
    assert caught.value.reason == REFUSALS[kind]
    assert str(caught.value) == f"cannot read image {path}: {REFUSALS[kind]}"


def test_embedding_skips_and_names_a_crafted_png_instead_of_hanging(tmp_path: Path) -> None:
    """The PNG made cv2.imdecode raise in a worker, which died: the run waited forever."""
    crafted = _hostile(tmp_path, "claims-100000")
    jobs = [Job(crafted), Job(SHARED_MEDIA / "cat.bmp"), Job(crafted, seed=1)]
    done: list = []
    thread = threading.Thread(
        target=lambda: done.append(extract(load_model_bytes(SMALL), jobs, 3, threads=2)),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=120)
    assert done, "extract() never returned"
    assert done[0].ok.tolist() == [False, True, False]
    assert done[0].refused == {0: REFUSALS["claims-100000"], 2: REFUSALS["claims-100000"]}


def test_a_failure_in_an_embedding_worker_is_one_line_on_the_main_thread() -> None:
    empty = np.zeros((0, 0, 3), np.uint8)  # cv2.resize raises a many-line cv2.error on it
    jobs = [Job(SHARED_MEDIA / "cat.bmp"), Job(empty), *[Job(SHARED_MEDIA / "owl.jpg")] * 20]
    with pytest.raises(CamappError) as caught:
        extract(load_model_bytes(SMALL), jobs, len(jobs), threads=2)
    assert str(caught.value).startswith("embedding failed: error: OpenCV")
    assert "\n" not in str(caught.value)


def _dataset_with(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """Two classes of real photos (11 each, resized copies) and one hostile file."""
    root = tmp_path / "ds"
    for label, photo in (("cats", "cat.bmp"), ("people", "grace_hopper.bmp")):
        (root / label).mkdir(parents=True)
        image = cv2.imread(str(SHARED_MEDIA / photo))
        for i in range(11):
            cv2.imwrite(str(root / label / f"{i}.png"), cv2.resize(image, (90 + 7 * i, 96)))
    bad = _hostile(root / "cats", kind)
    return root, bad


def test_dataset_check_names_the_refused_file_and_why(tmp_path: Path) -> None:
    root, bad = _dataset_with(tmp_path, "decodes-to-7000")
    report = check_dataset(root)
    assert report.unreadable == {str(bad): REFUSALS["decodes-to-7000"]}
    assert report.counts == {"cats": 11, "people": 11}
    text = format_check(report)
    assert f"cats/{bad.name} ({REFUSALS['decodes-to-7000']})" in text


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "{bad}"],
        ["model", "compare", str(SMALL), "--dataset", "{root}", "--seconds", "0.1"],
        ["model", "compare", str(SMALL), "--images", "{root}/cats", "--seconds", "0.1"],
    ],
    ids=["classify", "compare-dataset", "compare-images"],
)
def test_commands_refuse_a_huge_png_with_exit_2(
    model_dir: Path, tmp_path: Path, command: list[str]
) -> None:
    root, bad = _dataset_with(tmp_path, "claims-100000")
    args = [a.format(bad=bad, root=root) for a in command]
    result = run_camapp([*args, *(["--chart", str(tmp_path / "c.png")] * ("compare" in args))],
                        model_dir, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"camapp: error: cannot read image {bad}: {REFUSALS['claims-100000']}"
    )


def test_train_skips_counts_and_names_the_refused_file(model_dir: Path, tmp_path: Path) -> None:
    root, bad = _dataset_with(tmp_path, "claims-100000")
    out = tmp_path / "m" / "cats.tflite"
    result = run_camapp(
        ["train", str(root), "--out", str(out), "--base", str(SMALL), "--augment", "0"],
        model_dir,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1 unreadable image(s) skipped: see the report" in result.stdout
    markdown = out.with_suffix(".report.md").read_text()
    assert "; 1 unreadable." in markdown
    assert f"- {bad}: {REFUSALS['claims-100000']}" in markdown
