"""The documents stay true to the code: the example config loads, every setting it shows
commented out is a real one with a valid value, and every `camapp` command the documents
show parses (and a `run` command's settings validate)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from camapp.cli import parser
from camapp.cli.common import run_config
from camapp.config.load import build, read_file, validate_part
from camapp.config.schema import (
    AppSettings,
    CameraSettings,
    HaSettings,
    HttpSettings,
    MqttSettings,
    PiCameraSettings,
)
from camapp.errors import ConfigError
from tests.conftest import REPO

EXAMPLE = REPO / "deploy" / "config.example.toml"
TABLES: dict[str, type[BaseModel]] = {
    "": AppSettings,
    "mqtt": MqttSettings,
    "ha": HaSettings,
    "http": HttpSettings,
    "picamera": PiCameraSettings,
    "cameras": CameraSettings,
}
HEADER = re.compile(r"^(?:# )?\[\[?([a-z]+)\]\]?$")
COMMENTED = re.compile(r"^# ?([a-z_]+) = (.+)$")
DOCUMENTS = [REPO / "README.md", REPO / "deploy" / "README.md", *(REPO / "docs").glob("*.md")]


def test_the_example_config_loads_as_installed() -> None:
    config = build(read_file(EXAMPLE), {}, str(EXAMPLE))
    [camera] = config.cameras
    assert camera.camera_id == "frontdoor" and camera.source == "picamera"
    # Left unset, so that a trained model's recorded view applies (docs/training.md).
    assert not camera.model_fields_set & {"crop", "roi"}


def _commented() -> list[tuple[str, str, object]]:
    """(table, key, value) of every `# key = value` line, in the table it is shown in."""
    table, found = "", []
    for line in EXAMPLE.read_text().splitlines():
        if header := HEADER.match(line):
            table = header[1]
        elif assignment := COMMENTED.match(line):
            key, text = assignment[1], assignment[2].split(" # ")[0]
            found.append((table, key, tomllib.loads(f"v = {text}")["v"]))
    return found


def _dotted(loc: tuple[object, ...]) -> str:
    return ".".join(map(str, loc))


def test_every_commented_setting_of_the_example_is_real_and_valid() -> None:
    shown = _commented()
    keys = {(table, key) for table, key, _ in shown}
    assert {("", "roi"), ("", "adapt"), ("http", "bind"), ("cameras", "camera_id")} <= keys
    for table, key, value in shown:
        try:
            validate_part(TABLES[table], {key: value}, f"[{table}]", _dotted)
        except ConfigError as exc:  # a deployment path need not exist here
            assert "file not found" in str(exc), exc


def test_the_example_cameras_uncommented_make_two_cameras() -> None:
    """What a user gets by following the example's own instructions for several cameras."""
    lines, in_cameras = [], False
    for line in EXAMPLE.read_text().splitlines():
        in_cameras = in_cameras or line == "# [[cameras]]"
        if in_cameras and line.startswith("# "):
            lines.append(line[2:])
        elif not re.match(r"^(source|camera_id) = ", line):
            lines.append(line)
    config = build(tomllib.loads("\n".join(lines)), {}, "cameras example")
    porch, garage = config.cameras
    assert (porch.camera_id, porch.source, porch.roi) == ("porch", "picamera", (0, 0.5, 0.5, 1))
    assert (garage.adapt, garage.cpu_budget, garage.area) == ("auto", 25, "Garage")
    assert porch.temp_limit == garage.temp_limit == 75  # the top level: every camera's default


@pytest.mark.parametrize(
    ("path", "block"),
    [(p, b) for p in DOCUMENTS for b in re.findall(r"```toml\n(.*?)```", p.read_text(), re.S)],
)
def test_every_documented_config_snippet_is_valid(path: Path, block: str) -> None:
    try:
        build(tomllib.loads(block), {}, path.name)
    except ConfigError as exc:  # a deployment path need not exist here
        assert "file not found" in str(exc), exc


def _commands() -> list[tuple[Path, str]]:
    """Every concrete `camapp ...` line of the documents' shell blocks (continuations
    joined, comments cut); lines with placeholders in brackets or alternatives are left out."""
    found = []
    for path in DOCUMENTS:
        for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                words = shlex.split(line) if line else []
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words.pop(0)  # VAR=value before the command
                if not words or not words[0].endswith("camapp"):
                    continue
                if re.search(r"[\[|…]|\.\.\.", line):
                    continue
                found.append((path, shlex.join(words[1:])))
    return found


def test_the_documents_show_commands() -> None:
    shown = {command.split()[0] for _, command in _commands()}
    assert {"run", "train", "dataset", "model", "classify", "detect", "ha", "web", "bench"} <= shown


@pytest.mark.parametrize(("path", "command"), _commands())
def test_every_documented_command_parses(path: Path, command: str) -> None:
    try:
        args = parser().parse_args(shlex.split(command))
    except SystemExit as exc:
        pytest.fail(f"{path.name}: camapp {command}: exit {exc.code}")
    if args.command == "run" and args.config is None:
        run_config(args)  # the settings given validate (one ConfigError line if not)
