"""Zones (validated in one line), the bottom-centre rule, counts, and the count debounce."""

from __future__ import annotations

import numpy as np
import pytest

from camapp.detect.zones import (
    CountDebouncer,
    Counts,
    count,
    footpoints,
    inside,
    parse_zone,
    parse_zones,
)
from camapp.errors import ConfigError

PORCH = [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]  # the bottom-left quarter
# An L: the bottom-right quarter and the strip above its right half.
ELL = [[0.5, 0.5], [0.75, 0.5], [0.75, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]


@pytest.mark.parametrize(
    ("name", "points", "message"),
    [
        ("porch", [[0.1, 0.1], [0.2, 0.2]], r"^zone 'porch': needs at least 3 points, got 2$"),
        ("porch", [[0, 0], [1.2, 0.5], [0, 1]], r"^zone 'porch': point 2 \(1.2, 0.5\) is outside"),
        ("porch", [[0, 0], [0.5, -0.1], [0, 1]], r"point 2 \(0.5, -0.1\) is outside \[0, 1\]"),
        ("porch", [[0, 0], [float("nan"), 0.5], [0, 1]], r"point 2 \(nan, 0.5\) is outside"),
        ("porch", [[0, 0], "ab", [0, 1]], r"^zone 'porch': points must be \[x, y\] pairs"),
        ("porch", 5, r"^zone 'porch': points must be \[x, y\] pairs of numbers$"),
        # JSON's integers have no bound; float() of one past a float's raises OverflowError
        ("porch", [[0, 0], [10**400, 0.5], [0, 1]], r"^zone 'porch': points must be \[x, y\]"),
        ("", PORCH, r"^zone name must be a non-empty string, got ''$"),
        ("a\x00b", PORCH, r"^zone name must not hold control characters"),
        ("porch", [[0, 0], [0.5, 0.5], [1, 1]], r"^zone 'porch': its points enclose no area"),
        ("porch", [[0.3, 0.3]] * 3, r"^zone 'porch': its points enclose no area"),
    ],
)
def test_bad_zones_are_refused_in_one_line(name, points, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_zone(name, points)
    assert "\n" not in str(caught.value)


def test_a_zone_name_used_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^zone 'porch' is defined more than once$"):
        parse_zones([("porch", PORCH), ("drive", ELL), ("porch", ELL)])


def test_an_object_is_where_it_stands() -> None:
    """A tall person whose box is mostly above the porch stands in it: the bottom centre
    counts, not the box's centre."""
    zones = parse_zones([("porch", PORCH), ("drive", ELL)])
    boxes = np.array(
        [
            [0.1, 0.0, 0.3, 0.6],  # centre above the porch, feet in it
            [0.1, 0.0, 0.3, 0.4],  # all above it
            [0.8, 0.0, 0.9, 0.3],  # feet in the L's upright strip
            [0.55, 0.0, 0.65, 0.3],  # feet in the L's notch: in neither
            [0.4, 0.8, 0.8, 0.9],  # feet at x 0.6: in the L's foot
            [0.1, 0.5, 0.3, 1.0],  # cut off by the frame's bottom edge: still in the porch
        ]
    )
    np.testing.assert_allclose(footpoints(boxes[:1]), [[0.2, 0.6]])
    where = inside(footpoints(boxes), zones)
    assert where.tolist() == [
        [True, False],
        [False, False],
        [False, True],
        [False, False],
        [False, True],
        [True, False],
    ]


def test_counts_name_every_label_and_zone_and_ignore_untracked_labels() -> None:
    objects = [("person", ["porch"]), ("person", []), ("car", ["drive"]), ("cat", ["porch"])]
    counts = count(objects, ["person", "car", "dog"], ["porch", "drive"])
    assert counts.labels == {"person": 2, "car": 1, "dog": 0}
    assert counts.zones == {
        "porch": {"person": 1, "car": 0, "dog": 0},
        "drive": {"person": 0, "car": 1, "dog": 0},
    }


def people(n: int, in_porch: int = 0) -> Counts:
    return Counts({"person": n}, {"porch": {"person": in_porch}})


def test_counts_change_only_after_holding_and_name_the_frame_they_changed() -> None:
    debounce = CountDebouncer(frames=3)
    states = [debounce.update(f, people(n)) for f, n in enumerate([0, 0, 0, 1, 0, 1, 1, 1, 1])]
    assert [s is not None for s in states] == [False, False, True] + [False] * 4 + [True, False]
    assert states[2].frame == 0 and states[2].counts.labels == {"person": 0}
    assert states[7].frame == 5 and states[7].counts.labels == {"person": 1}
    assert debounce.state is states[7]


def test_each_count_is_debounced_on_its_own() -> None:
    """The person walks into the porch two frames after appearing: both counts change, each
    when it has held, and the state names the newest change."""
    debounce = CountDebouncer(frames=2)
    frames = [people(0), people(0), people(1), people(1, 1), people(1, 1), people(1, 1)]
    states = [debounce.update(f, c) for f, c in enumerate(frames)]
    changed = [
        (f, s.frame, s.counts.labels["person"], s.counts.zones["porch"]["person"])
        for f, s in enumerate(states)
        if s is not None
    ]
    assert changed == [(1, 0, 0, 0), (3, 2, 1, 0), (4, 3, 1, 1)]


def test_a_removed_zone_changes_the_state_at_once() -> None:
    debounce = CountDebouncer(frames=2)
    for f in range(2):
        debounce.update(f, people(1, 1))
    state = debounce.update(2, Counts({"person": 1}, {}))
    assert state is not None and state.frame == 2 and state.counts.zones == {}


def test_a_crossed_zone_still_holds_its_area() -> None:
    """A bow tie's signed area is zero, yet it holds two triangles: only points on one line
    are refused."""
    bow = parse_zone("bow", [[0, 0], [1, 1], [1, 0], [0, 1]])
    assert bow.name == "bow"
