"""Check a dataset before training: counts, balance, broken files, near-duplicates.

Every finding comes with advice in plain words; a broken image is a finding, never a
traceback. Near-duplicates use a 64-bit difference hash of a tiny grey thumbnail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camapp.capture.imagefile import UnreadableImage, read_image
from camapp.datasets import Sample, class_dirs, scan
from camapp.errors import echo, shorten

MIN_IMAGES = 10
MAX_IMBALANCE = 3.0
NEAR_DUPLICATE_BITS = 3  # of 64: differences a re-encode or sensor noise makes
_SHOWN = 5  # examples named per finding
UNPRINTABLE = "a label must be one line of printable UTF-8 text: rename the folder"


@dataclass
class DatasetReport:
    root: str
    counts: dict[str, int]  # readable images per class, every class folder listed
    unreadable: dict[str, str] = field(default_factory=dict)  # path: why it was refused
    duplicates: list[list[str]] = field(default_factory=list)  # near-identical groups
    conflicts: list[list[str]] = field(default_factory=list)  # ... spanning classes
    problems: list[str] = field(default_factory=list)  # training cannot start
    advice: list[str] = field(default_factory=list)  # it can, but should be better

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "ok": self.ok}


def dhash(grey: np.ndarray) -> int:
    """Difference hash: is each pixel of a 9x8 thumbnail brighter than its right neighbour."""
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def near_duplicate_groups(
    hashes: list[int], max_bits: int = NEAR_DUPLICATE_BITS
) -> list[list[int]]:
    """Groups (2 or more indices, ascending) of images whose hashes chain within `max_bits`
    bits. Groups, not pairs: a still scene gives n^2 pairs but only one group."""
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    codes = np.array(hashes, dtype=np.uint64)
    for i in range(len(codes) - 1):
        diff = (codes[i + 1 :] ^ codes[i]).view(np.uint8).reshape(-1, 8)
        for j in np.flatnonzero(np.unpackbits(diff, axis=1).sum(axis=1) <= max_bits):
            parent[root(i + 1 + int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _hash_all(
    samples: list[Sample], progress: Callable[[str, int, int], None] | None
) -> tuple[list[Sample], list[int], dict[str, str]]:
    """Read every image once (a reduced grey decode: fast), keeping the readable ones and
    why each other one was refused."""
    good, hashes, broken = [], [], {}
    for n, sample in enumerate(samples, 1):
        try:
            grey = read_image(sample.path, cv2.IMREAD_REDUCED_GRAYSCALE_4)
        except UnreadableImage as exc:
            broken[str(sample.path)] = exc.reason
        else:
            good.append(sample)
            hashes.append(dhash(grey))
        if progress:
            progress("check", n, len(samples))
    return good, hashes, broken


def check_dataset(
    root: Path, progress: Callable[[str, int, int], None] | None = None
) -> DatasetReport:
    """Look at every image of DATASET/<label>/ and say what would make training go wrong."""
    classes = [d.name for d in class_dirs(root)]
    good, hashes, broken = _hash_all(scan(root), progress)
    counts = {name: 0 for name in classes}
    for sample in good:
        counts[sample.label] += 1
    report = DatasetReport(str(root), counts, unreadable=broken)
    for group in near_duplicate_groups(hashes):
        paths = [str(good[i].path) for i in group]
        mixed = len({good[i].label for i in group}) > 1
        (report.conflicts if mixed else report.duplicates).append(paths)
    _advise(report)
    return report


def _names(paths: list[str], why: dict[str, str] | None = None) -> str:
    """A few of `paths` as label/file (with why, when known), and how many more."""
    shown = ", ".join(
        f"{Path(p).parent.name[:20]}/{Path(p).name[:40]}" + (f" ({why[p]})" if why else "")
        for p in paths[:_SHOWN]
    )
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _groups(groups: list[list[str]]) -> str:
    """The files of a few groups, one group after another, and how many more groups."""
    text = "; ".join(_names(group) for group in groups[:_SHOWN])
    return text + (f"; and {len(groups) - _SHOWN} more groups" if len(groups) > _SHOWN else "")


def unprintable(labels: Iterable[str]) -> str | None:
    """Why the first class folder whose name cannot be a label (a newline splits it in two
    in the model; a non-UTF-8 name cannot be written) is refused; None if every one can."""
    odd = next((label for label in labels if not label.isprintable()), None)
    return None if odd is None else f"class folder {echo(odd)}: {UNPRINTABLE}"


def _advise(r: DatasetReport) -> None:
    """Turn the counts into problems (training cannot start) and advice."""
    filled = {k: v for k, v in r.counts.items() if v}
    if len(filled) < 2:
        r.problems.append(
            f"need at least 2 classes with images, found {len(filled)}: make one folder per "
            f"class in {shorten(r.root)} and put its images (.jpg, .png, .bmp) in it"
        )
    if odd := unprintable(r.counts):
        r.problems.append(odd)
    if r.unreadable:
        r.advice.append(
            f"{len(r.unreadable)} unreadable image(s) will be skipped: "
            f"{_names(list(r.unreadable), r.unreadable)}; "
            "delete or re-save them"
        )
    for label, n in r.counts.items():
        if n < MIN_IMAGES:
            r.advice.append(f"class '{label}' has {n} image(s): add at least {MIN_IMAGES}")
    if len(filled) >= 2 and max(filled.values()) > MAX_IMBALANCE * min(filled.values()):
        big, small = max(filled, key=filled.get), min(filled, key=filled.get)
        r.advice.append(
            f"classes are imbalanced: '{big}' has {filled[big]} images, '{small}' "
            f"{filled[small]} (over {MAX_IMBALANCE:g}x): add images of '{small}' or remove "
            f"some of '{big}'"
        )
    for group in r.conflicts[:_SHOWN]:
        labels = sorted({Path(p).parent.name[:30] for p in group})
        r.advice.append(
            f"near-identical images in classes {', '.join(labels)} (a wrong label?): "
            f"{_names(group)}"
        )
    if len(r.conflicts) > _SHOWN:
        r.advice.append(f"... and {len(r.conflicts) - _SHOWN} more such groups")
    if r.duplicates:
        extra = sum(len(g) - 1 for g in r.duplicates)
        r.advice.append(
            f"{extra} image(s) are near-copies of another in the same class "
            f"({len(r.duplicates)} group(s)): they add little and make validation look better "
            f"than it is (frames of a still scene are like this); keep one of each group: "
            f"{_groups(r.duplicates)}"
        )


def format_check(report: DatasetReport) -> str:
    """The report as lines for a terminal."""
    width = max((len(k) for k in report.counts), default=5)
    lines = [f"dataset {shorten(report.root)}: {sum(report.counts.values())} images"]
    lines += [f"  {label.ljust(width)}  {n}" for label, n in report.counts.items()]
    lines += [f"error: {p}" for p in report.problems]
    lines += [f"advice: {a}" for a in report.advice]
    if report.ok and not report.advice:
        lines.append("looks good")
    return "\n".join(lines)
