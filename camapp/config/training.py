"""The settings of `camapp train` and of distillation, declared once like `camapp run`'s.

Their flags (`camapp train --help`), their validation with one-line errors and their table in
docs/configuration.md are derived from these models, as for the run's settings
(config/schema.py). The head's fitting settings are for the API and benchmarks: no flags.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from camapp.config.schema import NonEmpty, Roi, Settings, setting

MAX_AUGMENT = 10


def _text(value: Any) -> Any:
    """A path given as a Path (the API) is the same setting as its text (the flag)."""
    return str(value) if isinstance(value, PurePath) else value


PathText = Annotated[NonEmpty, BeforeValidator(_text)]


class HeadSettings(Settings):
    """How hard the numpy head is fitted: weight decay, Adam step, epochs and early stop."""

    l2: float = setting(1e-2, "L2 weight decay of the head", ge=0, le=10, flag=False)
    learning_rate: float = setting(0.01, "Adam step size", gt=0, le=10, flag=False)
    max_epochs: int = setting(300, "epochs at most", ge=1, le=100_000, flag=False)
    patience: int = setting(
        20, "epochs without a better validation loss before stopping", ge=1, le=10_000, flag=False
    )
    batch_size: int = setting(256, "embeddings per step", ge=1, le=65_536, flag=False)
    seed: int = setting(0, "the head's random start", ge=0, le=2**32 - 1, flag=False)


class _Shared(Settings):
    """What training and distillation share: the view, the cores, the head."""

    crop: Literal["center", "stretch"] = setting(
        "center", "how an image (or its region) fits the base model's input"
    )
    roi: Roi | None = setting(
        None, "region of interest x1,y1,x2,y2 (fractions of the image)", metavar="X1,Y1,X2,Y2"
    )
    threads: int | None = setting(
        None, "interpreter threads embedding images (default: one per core)", ge=1, le=64
    )
    low_priority: bool = setting(True, "embed at low CPU priority (a camera keeps its share)")
    head: HeadSettings = setting(HeadSettings, "the head's fitting")


class TrainSettings(_Shared):
    """`camapp train DATASET`: a head of your classes on a base model's embedding."""

    base: NonEmpty | None = setting(
        None, "base model, a file or known name (default: mobilenet_v2_int8)", metavar="MODEL"
    )
    val_fraction: float = setting(0.2, "share of each class held out to validate on", ge=0, le=0.9)
    val_dir: PathText | None = setting(
        None, "a separate validation dataset instead of --val-fraction", metavar="DATASET"
    )
    augment: int = setting(1, "augmented copies of each training image", ge=0, le=MAX_AUGMENT)
    seed: int = setting(0, "the validation split's seed (a run repeats)", ge=0, le=2**32 - 1)


class DistillSettings(_Shared):
    """`camapp train --teacher T --frames VIDEO`: a small model answering like a big one."""

    stride: int = setting(2, "use every Nth frame of the clip", ge=1, le=1000)
    holdout: float = setting(
        0.3, "share of the clip's last frames kept to measure agreement", ge=0.05, le=0.9
    )
    min_share: float = setting(
        0.02, "share of the frames a teacher class must top to be kept", gt=0, lt=0.5
    )
