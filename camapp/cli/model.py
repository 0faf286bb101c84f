"""`camapp model`: fetch, inspect and list models."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camapp import models
from camapp.cli.common import EPILOG, Parser
from camapp.errors import EXIT_OK

log = logging.getLogger("camapp")


def add(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("model", help="fetch and inspect models", epilog=EPILOG)
    actions = m.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    f = actions.add_parser("fetch", help="download a known model and verify its sha256")
    f.add_argument("name", nargs="?", default=models.DEFAULT_MODEL)
    f.add_argument("--mirror", type=Path, help="copy from this directory instead of downloading")
    f.add_argument("--dir", type=Path, help="where to store it (default: the model directory)")
    f.set_defaults(handler=fetch)
    i = actions.add_parser("info", help="inputs, outputs, quantization and labels of a model")
    i.add_argument("path", help="a model file or a known model name")
    i.set_defaults(handler=info)
    actions.add_parser("list", help="the known models").set_defaults(handler=list_models)


def fetch(args: argparse.Namespace) -> int:
    path = models.fetch(args.name, args.dir, args.mirror, progress=lambda m: log.info("%s", m))
    print(path)
    return EXIT_OK


def info(args: argparse.Namespace) -> int:
    print(models.format_model_info(models.model_info(models.resolve_model(args.path))))
    return EXIT_OK


def list_models(args: argparse.Namespace) -> int:
    for name, spec in models.load_manifest().items():
        default = " (default)" if name == models.DEFAULT_MODEL else ""
        print(f"{name}{default}: {spec.file}\n    {spec.description}")
    return EXIT_OK
