"""What a model trained by `camapp train` records about itself: the crop and region of
interest it was trained with (applied by default at inference, so a model never runs on
another view than the one it learnt), its labels' meaning, its base. A JSON file in the zip
appended to the model, beside its labels."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from camapp.errors import ConfigError

META_FILE = "camapp.json"


def read_meta(model_path: Path) -> dict[str, Any]:
    """The training settings embedded in a grafted model ({} for any other model)."""
    try:
        with zipfile.ZipFile(model_path) as z:
            text = z.read(META_FILE) if META_FILE in z.namelist() else b"{}"
    except zipfile.BadZipFile:
        return {}  # no appended zip: not a grafted model
    except OSError as exc:
        raise ConfigError(
            f"cannot read model {str(model_path)[:100]}: {exc.strerror or exc}"
        ) from None
    try:
        meta = json.loads(text)
    except ValueError:
        raise ConfigError(f"corrupt {META_FILE} in {str(model_path)[:100]}") from None
    return meta if isinstance(meta, dict) else {}
