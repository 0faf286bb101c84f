"""matplotlib, optional (the `bench` and `train` extras), for the PNG charts that sit
beside a report: a missing extra means no chart, never a failed command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camapp.errors import ConfigError, os_reason, shorten


def pyplot() -> Any | None:
    """matplotlib.pyplot drawing off-screen (a camera has no display); None without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig: Any, path: Path, dpi: int) -> Path:
    """Write `fig` to `path` and free it; an unwritable path is the user's to fix."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise ConfigError(f"cannot write chart {shorten(path)}: {os_reason(exc)}") from None
    finally:
        plt.close(fig)
    return Path(path)
