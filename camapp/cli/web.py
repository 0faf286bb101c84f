"""`camapp web password`: hash a password for the live view's `http.password_hash`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import BinaryIO

from camapp.cli.common import EPILOG, Parser
from camapp.errors import EXIT_OK, ConfigError
from camapp.web.auth import MAX_PASSWORD, hash_password

TOO_LONG = f"the password must have 1 to {MAX_PASSWORD} characters"


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
        text = _piped(sys.stdin.buffer)
    if not 0 < len(text) <= MAX_PASSWORD:
        raise ConfigError(TOO_LONG)
    print(f'password_hash = "{hash_password(text)}"')
    return EXIT_OK


def _piped(stream: BinaryIO) -> str:
    """The first line of a piped stdin, read bounded (`< /dev/zero` has no end of line) and
    decoded as UTF-8; one past any password's bytes is too long, whatever its characters
    (cut there, it would end inside one and read as no UTF-8)."""
    most = 4 * MAX_PASSWORD  # UTF-8: at most 4 bytes a character
    line = stream.readline(most + 2).rstrip(b"\r\n")
    if len(line) > most:
        raise ConfigError(TOO_LONG)
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the password is not UTF-8 text") from None
