"""A small IoU/centroid tracker: the same object keeps its id from frame to frame.

Each frame's detections are matched to the live tracks of the same label, greedily by IoU,
then by how near their centres are (within the diagonal of the track's box: a small object
that moved by most of its own size). A track is announced (`new`) once it has been seen in
`confirm_frames` frames, so a detection in fewer frames (a false one, or a second box on
one person) makes no event; it survives `lost_frames` frames without a match (so a count
does not flicker on a missed detection), and `parked_lost_frames` once it is stationary
(its box has stayed put for `still_frames` frames: a parked car, which detectors miss now
and then, stays one object). Then it `end`s. `update` events say that the zones it is in
changed, or that it stopped or moved on, or that its sub_label changed.

Detect, then classify: a frame's detections may come with a guess of what each is (a
classifier's best class and score for its crop); each matched track keeps a vote of them,
score-weighted and decayed (`VOTE_DECAY` per vote, at most `MAX_VOTES` classes), so one
wrong crop does not flip its `sub_label`, the vote's leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from camapp.detect.zones import Zone, footpoints, inside

VOTE_DECAY = 0.9  # each earlier vote's weight, per new vote: a track's own recent crops count most
MAX_VOTES = 8  # classes a track's vote holds (the weakest goes): bounded per track
Guess = tuple[str, float] | None  # a detection's class from its crop, and its score


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of x1, y1, x2, y2 boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


@dataclass(slots=True)
class Track:
    """One object followed across frames; boxes are fractions of the frame."""

    id: int
    label: str
    box: np.ndarray
    score: float
    top_score: float
    start: float  # capture time of its first frame
    last_seen: float  # capture time of its last matched frame
    anchor: np.ndarray  # its box when it last moved
    hits: int = 0  # frames it was matched in
    missed: int = 0  # frames since its last match
    confirmed: bool = False
    zones: tuple[str, ...] = ()  # the zones it is in now
    entered: list[str] = field(default_factory=list)  # every zone it has been in, in order
    stationary: bool = False
    still: int = 0  # frames its box has stayed near `anchor`
    best_frame: int = -1  # the frame of its top score (a snapshot shows that frame)
    best_box: np.ndarray = field(default_factory=lambda: np.zeros(4))  # its box there
    votes: dict[str, float] = field(default_factory=dict)  # class -> decayed sum of scores
    sub_label: str | None = None  # the leader of `votes`
    voted: int = 0  # crops classified


@dataclass(frozen=True, slots=True)
class Event:
    """`new`, `update` or `end` of a track, as published: times are capture times."""

    type: str
    frame: int
    id: int
    label: str
    score: float
    top_score: float
    box: tuple[float, ...]
    start: float
    end: float | None
    zones: tuple[str, ...]
    entered: tuple[str, ...]
    stationary: bool
    best_frame: int = -1  # the frame of its top score
    best_box: tuple[float, ...] = ()  # its box there
    sub_label: str | None = None


class Tracker:
    """Tracks of one camera; `update` once per processed frame, from one thread."""

    def __init__(
        self,
        zones: Sequence[Zone] = (),
        iou: float = 0.3,
        confirm_frames: int = 3,
        lost_frames: int = 3,
        parked_lost_frames: int = 50,
        still_frames: int = 10,
        still_iou: float = 0.8,
    ) -> None:
        self.zones = list(zones)  # replaced at run time by set_zones (a `set` of zones)
        self.iou, self.confirm_frames, self.lost_frames = iou, confirm_frames, lost_frames
        self.parked_lost_frames = parked_lost_frames
        self.still_frames, self.still_iou = still_frames, still_iou
        self._tracks: list[Track] = []
        self._next_id = 1

    def set_zones(self, zones: Sequence[Zone], frame: int) -> list[Event]:
        """Replace the zones (a `set` at run time), placing every live track in them by the
        box it has now, so a parked object missed this frame counts where it stands at once;
        `update` events for the confirmed tracks whose zones changed."""
        self.zones = list(zones)
        if not self._tracks:
            return []
        boxes = np.array([t.box for t in self._tracks])
        where = inside(footpoints(boxes), self.zones)
        events = []
        for track, row in zip(self._tracks, where, strict=True):
            if self._place(track, _named(self.zones, row)) and track.confirmed:
                events.append(_event("update", frame, track))
        return events

    @property
    def tracks(self) -> list[Track]:
        """The objects there now: confirmed tracks, including those missed for a few frames."""
        return [t for t in self._tracks if t.confirmed]

    @property
    def live(self) -> list[Track]:
        """Every track followed now, confirmed or not (a track's top score may come before
        it is confirmed)."""
        return list(self._tracks)

    def wanting(self, labels: frozenset[str], votes: int) -> bool:
        """A young track of `labels` (confirmed or not yet) has fewer than `votes` votes.
        Young: seen in at most 3 x `votes` frames, so a track that gets no crop classified
        (more objects than a frame's crops) does not keep every frame classified for good."""
        return any(
            t.voted < votes and t.hits <= 3 * votes and t.label in labels for t in self._tracks
        )

    def update(
        self,
        frame: int,
        ts: float,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: Sequence[str],
        guesses: Sequence[Guess] | None = None,
    ) -> list[Event]:
        """Match one frame's detections (boxes as fractions of the frame) to the tracks,
        their `guesses` (if classified) to the tracks' votes; return the events this frame
        caused."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        labels_arr = np.asarray(labels, dtype=object)
        pairs = self._match(boxes, labels_arr)
        matched = {t for t, _ in pairs}
        for i, track in enumerate(self._tracks):
            if i not in matched:
                track.missed += 1
        hits = [(self._tracks[t], d) for t, d in pairs]
        for d in sorted(set(range(len(boxes))) - {d for _, d in pairs}):
            score = float(scores[d])
            box = boxes[d]
            track = Track(self._next_id, str(labels_arr[d]), box, score, score, ts, ts, box)
            self._next_id += 1
            self._tracks.append(track)
            hits.append((track, d))
        events: list[Event] = []
        self._hit(hits, boxes, scores, ts, frame, events, guesses or ())
        self._end_lost(frame, events)
        return events

    def _match(self, boxes: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
        """(track index, detection index) pairs: by IoU first, then by centre distance."""
        if not self._tracks or not len(boxes):
            return []
        known = np.array([t.box for t in self._tracks])
        same = np.array([t.label for t in self._tracks], dtype=object)[:, None] == labels[None]
        iou = np.where(same, iou_matrix(known, boxes), -1.0)
        pairs = _greedy(iou, self.iou)
        # Then centres nearer than the track box's diagonal, for what IoU missed.
        reach = np.hypot(*(known[:, 2:] - known[:, :2]).T)[:, None]
        distance = np.linalg.norm(_centres(known)[:, None] - _centres(boxes)[None], axis=2)
        near = np.where(same & (reach > 0), 1 - distance / np.maximum(reach, 1e-9), -1.0)
        for t, d in pairs:
            near[t], near[:, d] = -1.0, -1.0
        return pairs + _greedy(near, 1e-9)

    def _hit(
        self,
        hits: list[tuple[Track, int]],
        boxes: np.ndarray,
        scores: np.ndarray,
        ts: float,
        frame: int,
        events: list[Event],
        guesses: Sequence[Guess],
    ) -> None:
        """The tracks matched in this frame (to detection indices): move them, note their
        zones, stillness (both worked out for all of them at once) and votes, announce them."""
        if not hits:
            return
        moved = boxes[[d for _, d in hits]]
        where = inside(footpoints(moved), self.zones)
        anchors = np.array([track.anchor for track, _ in hits])
        stays = np.diagonal(iou_matrix(anchors, moved)) >= self.still_iou
        for i, (track, d) in enumerate(hits):
            track.hits += 1
            track.box, track.score = moved[i], float(scores[d])
            track.missed, track.last_seen = 0, ts
            if track.score > track.top_score or track.best_frame < 0:  # the first of a tie
                track.top_score, track.best_frame, track.best_box = track.score, frame, track.box
            placed = self._place(track, _named(self.zones, where[i]))
            changed = placed | self._settle(track, bool(stays[i]))
            if d < len(guesses) and guesses[d] is not None:
                changed |= vote(track, *guesses[d])  # type: ignore[misc]
            if not track.confirmed and track.hits >= self.confirm_frames:
                track.confirmed = True
                events.append(_event("new", frame, track))
            elif track.confirmed and changed:
                events.append(_event("update", frame, track))

    @staticmethod
    def _place(track: Track, zones: tuple[str, ...]) -> bool:
        """Note the zones the track stands in; True when they changed."""
        track.entered.extend(z for z in zones if z not in track.entered)
        changed, track.zones = zones != track.zones, zones
        return changed

    def _settle(self, track: Track, stays: bool) -> bool:
        """Count the frames the box stays near its anchor; True when the track became
        stationary or moved on."""
        if stays:
            track.still += 1
        else:
            track.anchor, track.still = track.box, 0
        stationary = track.still >= self.still_frames
        changed, track.stationary = stationary != track.stationary, stationary
        return changed

    def _end_lost(self, frame: int, events: list[Event]) -> None:
        """Drop the tracks missed for longer than they may be; confirmed ones `end`."""
        live = []
        for track in self._tracks:
            allowed = self.parked_lost_frames if track.stationary else self.lost_frames
            if track.missed <= (allowed if track.confirmed else 0):
                live.append(track)
            elif track.confirmed:
                events.append(_event("end", frame, track, end=track.last_seen))
        self._tracks = live


def vote(track: Track, sub_label: str, score: float) -> bool:
    """Add one classified crop to the track's vote; True when its leader changed."""
    votes = track.votes
    for key in votes:
        votes[key] *= VOTE_DECAY
    votes[sub_label] = votes.get(sub_label, 0.0) + score
    track.voted += 1
    if len(votes) > MAX_VOTES:
        del votes[min(votes, key=votes.__getitem__)]
    leader = max(votes, key=votes.__getitem__)
    changed, track.sub_label = leader != track.sub_label, leader
    return changed


def _greedy(affinity: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Pairs by highest affinity first, each row and column used once; the loop runs once per
    pair made, never over all candidates."""
    affinity = affinity.copy()
    pairs: list[tuple[int, int]] = []
    while affinity.size:
        t, d = np.unravel_index(int(affinity.argmax()), affinity.shape)
        if affinity[t, d] < minimum:
            break
        pairs.append((int(t), int(d)))
        affinity[t], affinity[:, d] = -1.0, -1.0
    return pairs


def _named(zones: Sequence[Zone], inside_each: np.ndarray) -> tuple[str, ...]:
    """The names of the zones a row of `inside` says a point is in."""
    return tuple(z.name for z, yes in zip(zones, inside_each, strict=True) if yes)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _event(kind: str, frame: int, track: Track, end: float | None = None) -> Event:
    return Event(
        type=kind,
        frame=frame,
        id=track.id,
        label=track.label,
        score=round(track.score, 4),
        top_score=round(track.top_score, 4),
        box=tuple(round(float(v), 4) for v in track.box),
        start=track.start,
        end=end,
        zones=track.zones,
        entered=tuple(track.entered),
        stationary=track.stationary,
        best_frame=track.best_frame,
        best_box=tuple(round(float(v), 4) for v in track.best_box),
        sub_label=track.sub_label,
    )
