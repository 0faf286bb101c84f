"""Errors that end a command with a one-line message and a documented exit code.

Exit codes (also in README and `camapp --help`):
  0  success (a file source that reaches its end is success)
  1  runtime failure (source lost for good, model failed to run, undelivered messages)
  2  usage or configuration error (bad option or value, missing file, corrupt model,
     sha256 mismatch, delegate that cannot load)
"""

from __future__ import annotations

import reprlib

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class CamappError(Exception):
    """A failure the user can act on; `str()` is the one line shown to them."""

    exit_code = EXIT_RUNTIME


class ConfigError(CamappError):
    """Bad option, config value, path or model: the user must fix the input."""

    exit_code = EXIT_USAGE


class SourceError(CamappError):
    """A frame source could not be opened or stopped delivering for good."""

    exit_code = EXIT_RUNTIME


SHOWN = 100  # the most characters of a user's value, path or reason that a message repeats
_REPR = reprlib.Repr()  # Python 3.11's takes no arguments
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, SHOWN, SHOWN
_REPR.maxlist = _REPR.maxdict = 8


def shorten(text: object, keep_start: bool = False) -> str:
    """A path, name or reason as a message repeats it: one line, at most SHOWN characters,
    keeping a long path's end, where its file name is (or, `keep_start`, a URL's start,
    where its scheme and host are)."""
    line = " ".join(str(text).split())
    if len(line) <= SHOWN:
        return line
    return line[: SHOWN - 1] + "…" if keep_start else "…" + line[-(SHOWN - 1) :]


def echo(value: object) -> str:
    """A value the user gave, as an error shows it: its repr, never more than about SHOWN
    characters (a hostile payload is not echoed whole)."""
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def first_line(exc: BaseException) -> str:
    """An exception's message as one short line (its type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:SHOWN] if lines else type(exc).__name__


def os_reason(exc: OSError) -> str:
    """The short reason of an OSError ("Permission denied"), without errno noise."""
    return exc.strerror or first_line(exc)


def read_error(what: str, path: object, exc: OSError) -> ConfigError:
    """The one-line error for a file that cannot be read, with the OS's short reason."""
    return ConfigError(f"cannot read {what} {shorten(path)}: {os_reason(exc)}")
