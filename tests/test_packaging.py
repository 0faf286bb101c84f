"""`pip install .` gives a working camapp: the wheel carries the manifest and the command."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_wheel_ships_manifest_and_console_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("camapp-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read("camapp/models/manifest.toml").decode())
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mobilenet_v2_int8" in manifest["models"]
    assert {"camapp/cli/__init__.py", "camapp/capture/picamera.py"} <= names
    page = ("index.html", "login.html", "app.js", "login.js", "style.css")  # the live view's
    assert {f"camapp/web/static/{name}" for name in page} <= names
    assert "camapp = camapp.cli:main" in entry_points
    assert not any(n.endswith((".tflite", ".mp4")) for n in names)
