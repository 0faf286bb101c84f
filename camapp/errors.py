"""Errors that end a command with a one-line message and a documented exit code.

Exit codes (also in README and `camapp --help`):
  0  success (a file source that reaches its end is success)
  1  runtime failure (source lost for good, model failed to run, undelivered messages)
  2  usage or configuration error (bad option or value, missing file, corrupt model,
     sha256 mismatch, delegate that cannot load)
"""

from __future__ import annotations

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
