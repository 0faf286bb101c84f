"""The `camapp` command: one module per subcommand, each adding its own parser.

Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error.
Errors are one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from camapp import __version__
from camapp.capture.opencv_setup import configure_opencv
from camapp.cli import bench, classify, dataset, detect, ha, model, run, train, web
from camapp.cli.common import EPILOG, Parser
from camapp.errors import EXIT_RUNTIME, EXIT_USAGE, CamappError, os_reason
from camapp.logs import configure as configure_logging

log = logging.getLogger("camapp")

DESCRIPTION = (
    "A smart camera for the Raspberry Pi: classify frames from cameras, streams or videos "
    "with quantized TFLite models and publish over MQTT."
)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="camapp", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"camapp {__version__}")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in (run, classify, detect, model, dataset, train, ha, bench, web):
        command.add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.debug)
    configure_opencv(args.debug)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader gone early shows here, not at exit after the verdict
        return code
    except CamappError as exc:
        return _error(args, str(exc), exc.exit_code)
    except BrokenPipeError:  # stdout closed early, e.g. `camapp model list | head -1`
        return _reader_gone()
    except OSError as exc:  # a file or directory the user named that cannot be used
        where = f": {exc.filename}" if exc.filename else ""
        return _error(args, f"{os_reason(exc)}{where}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _error(args, "interrupted", EXIT_RUNTIME)
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        return _error(args, f"internal error: {type(exc).__name__}: {exc}", EXIT_RUNTIME)


def _reader_gone() -> int:
    """The reader of stdout took what it wanted and left (`| head`): end quietly, as other
    command-line tools do, with exit 1 for a script that checks (pipefail); what is still
    buffered goes nowhere rather than failing again at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_RUNTIME


def _error(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        log.exception("failed")
    print(f"camapp: error: {message}", file=sys.stderr)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # what is still buffered can go nowhere: drop it, not at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
