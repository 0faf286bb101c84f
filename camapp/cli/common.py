"""What the subcommands share: the one-line parser and settings from file + flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from camapp.capture.imagefile import read_image
from camapp.config import flags
from camapp.config.load import RunConfig, build, read_file
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_USAGE

EPILOG = "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other camapp error, instead of argparse's usage dump."""
        self.exit(EXIT_USAGE, f"camapp: error: {message} (see {self.prog} --help)\n")


def image_command(
    sub: argparse._SubParsersAction,
    name: str,
    settings: set[str],
    handler: Callable[[argparse.Namespace], int],
    model_help: str | None = None,
    **described: str,
) -> None:
    """A subcommand over image files (`classify`, `detect`): IMAGE..., the model's settings
    as their flags (`model_help`: --model's own, where its default differs), and --json."""
    p = sub.add_parser(name, epilog=EPILOG, **described)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    flags.add_flags(p, only=settings, helps={"model": model_help} if model_help else None)
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.set_defaults(handler=handler)


def images_and_camera(
    args: argparse.Namespace,
) -> tuple[CameraSettings, list[tuple[Path, np.ndarray]]]:
    """The one camera's settings and every image, read before any model is loaded: a bad
    image or setting is refused before the first line is printed."""
    [camera] = run_config(args).cameras
    return camera, [(path, read_image(path)) for path in args.images]


def run_config(args: argparse.Namespace, **override: Any) -> RunConfig:
    """The settings of the config file (if any), overridden by the command line."""
    file_values: dict[str, Any] = {}
    origin = "command line"
    if getattr(args, "config", None):
        file_values, origin = read_file(args.config), str(args.config)
    return build(file_values, {**flags.values(args), **override}, origin)
