"""What the subcommands share: the one-line parser and settings from file + flags."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from camapp.config import flags
from camapp.config.load import RunConfig, build, read_file
from camapp.errors import EXIT_USAGE

EPILOG = "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other camapp error, instead of argparse's usage dump."""
        self.exit(EXIT_USAGE, f"camapp: error: {message} (see {self.prog} --help)\n")


def run_config(args: argparse.Namespace, **override: Any) -> RunConfig:
    """The settings of the config file (if any), overridden by the command line."""
    file_values: dict[str, Any] = {}
    origin = "command line"
    if getattr(args, "config", None):
        file_values, origin = read_file(args.config), str(args.config)
    return build(file_values, {**flags.values(args), **override}, origin)
