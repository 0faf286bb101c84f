"""`camapp run`: classify cameras, streams or videos and publish over MQTT."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from camapp.app import App, StoppedDuringStart, stop_during_start
from camapp.cli.common import EPILOG, run_config
from camapp.config import flags
from camapp.errors import EXIT_OK

log = logging.getLogger("camapp")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="classify a camera, stream or video and publish over MQTT", epilog=EPILOG
    )
    p.add_argument("--config", type=Path, help="TOML or YAML file with any of these settings")
    flags.add_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    stop_during_start()
    try:
        return App(run_config(args)).run()
    except StoppedDuringStart as stopped:  # raised only before run() installs its handler
        log.info("%s during start-up: stopped before capture", signal.Signals(stopped.args[0]).name)
        return EXIT_OK
