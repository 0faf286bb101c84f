"""`camapp web password`: hash a password for the live view's `http.password_hash`."""

from __future__ import annotations

import argparse
import getpass
import sys

from camapp.cli.common import EPILOG, Parser
from camapp.errors import EXIT_OK, ConfigError
from camapp.web.auth import MAX_PASSWORD, hash_password


def add(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("web", help="the live view page", epilog=EPILOG)
    actions = w.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    what = (
        "read a password (prompted, or the first line of stdin) and print the "
        "`password_hash = ...` line for the config's [http] table"
    )
    p = actions.add_parser("password", help=what, description=what, epilog=EPILOG)
    p.set_defaults(handler=password)


def password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        text = getpass.getpass("live view password: ")
        if getpass.getpass("again: ") != text:
            raise ConfigError("the two passwords differ")
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    if not 0 < len(text) <= MAX_PASSWORD:
        raise ConfigError(f"the password must have 1 to {MAX_PASSWORD} characters")
    print(f'password_hash = "{hash_password(text)}"')
    return EXIT_OK
