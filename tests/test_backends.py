"""Backends are plugins: a registry keyed by name, chosen by setting or by the manifest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp import cli
from camapp.errors import ConfigError
from camapp.inference import backend, loader
from tests.conftest import SHARED_MODELS


def test_a_new_backend_is_one_file_and_its_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tests.plugins.colour_backend  # noqa: F401  (registers "colour")

    assert "colour" in backend.names()
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 2] = 220  # red, in OpenCV's BGR order
    photo = tmp_path / "red.png"
    cv2.imwrite(str(photo), image)
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    model = tmp_path / "none.bin"  # the plugin reads no file; camapp only checks it exists
    model.write_bytes(b"")
    args = ["classify", "--backend", "colour", "--model", str(model), "--labels", str(labels)]
    assert cli.main([*args, "--json", str(photo)]) == 0
    out = capsys.readouterr().out
    assert '"label": "red"' in out and '"score": 0.8627' in out


def test_the_manifest_picks_the_edge_tpu_backend_by_itself(model_dir: Path) -> None:
    from camapp import models

    path = models.fetch("mobilenet_v2_edgetpu", model_dir, mirror=SHARED_MODELS)
    labels = str(SHARED_MODELS / "imagenet_labels.txt")
    assert loader.plan(str(path), labels).backend == "edgetpu"
    assert loader.plan(None).backend == "litert"  # the default model runs on the CPU
    assert loader.plan(None, backend="edgetpu").backend == "edgetpu"  # the setting wins


def test_an_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'tpu' \(known: .*edgetpu.*litert"):
        loader.plan(None, backend="tpu")
