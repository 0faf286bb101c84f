"""`camapp run`: classify cameras, streams or videos and publish over MQTT."""

from __future__ import annotations

import argparse
from pathlib import Path

from camapp.app import App
from camapp.cli.common import EPILOG, run_config
from camapp.config import flags


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="classify a camera, stream or video and publish over MQTT", epilog=EPILOG
    )
    p.add_argument("--config", type=Path, help="TOML or YAML file with any of these settings")
    flags.add_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    return App(run_config(args)).run()
