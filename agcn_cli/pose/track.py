"""People of each frame -> tracks: one person per row through the whole video (data_specs/pose.md).

Rows are ordered as the tracker of the PoseC3D/ST-GCN++ skeleton demo orders them (pyskl
`demo/demo_skeleton.py`, `pose_tracking`, by MMAction2's skeleton authors): by the number of frames
in which the track holds a person, most first; ties keep the order in which the tracks began (by
frame, then by the estimator's order within the frame). `max_people` keeps the first M, as its
`max_tracks` does (2, `FormatGCNInput`'s `num_person`).

Matching takes that tracker's frame-to-frame scheme with four changes:
- a track is compared where it should be now, moved on at the speed of its last two detections
  (constant velocity), not where it was last seen, so people crossing keep their tracks even when
  the frames around the crossing are missing;
- its cost (`dist_ske`) sums over joints max(2 x distance in pixels, |score difference|), so it
  grows with image size and people's size; here a pair costs the mean distance over the joints both
  score above 0, divided by the mean of the two boxes' sizes (the longer side of the box around the
  scored joints), plus 1 - the IoU of those boxes;
- it has no gate, so a person who enters while another leaves takes the leaver's track; here a pair
  costing more than `gate` is not matched and the detection begins a new track;
- it keeps a track matchable for 29 frames without a detection (`thre=30`); here `max_gap`, 10 by
  default: MMAction2's `ntu_pose_extraction.py` joins boxes into tracklets over fewer than 10 missed
  frames (IoU >= 0.6).
Assignment is greedy, not Hungarian (no scipy): pairs are taken by rising cost when their track and
detection are both free (`greedy_assignment`). With detections one frame apart the cheapest pairs
are the right ones, so the two differ only in crowds where costs nearly tie.

Where the input gives ids (OpenPose `person_id`, MMPose `track_id`), each id is one track and
nothing is matched. A detection with no joint scored above 0 shows nothing and is left out.

`OnlineTracker` does the matching one frame at a time, for frames that arrive live; `track_people` runs
it over the whole video, then orders the tracks.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AgcnError
from .people import FramePeople

TRACK_MAX_GAP = 10  # frames a track may go without a detection and still be matched
TRACK_GATE = 1.5  # highest cost matched: normalised joint distance + (1 - box IoU)


@dataclass
class Tracks:
    """People as an MMAction2 2D annotation holds them: row m is one person through the video."""

    keypoint: np.ndarray  # (M, T, V, 2) float32 pixels; 0 where the track has no detection
    keypoint_score: np.ndarray  # (M, T, V) float32; 0 where the track has no detection
    ids: np.ndarray  # (M,) int64: the input's ids, else the track's number in order of appearance


def track_people(
    frames: Sequence[FramePeople],
    max_people: int | None = None,
    *,
    max_gap: int = TRACK_MAX_GAP,
    gate: float = TRACK_GATE,
) -> Tracks:
    """T frames of people -> `Tracks` of the first `max_people` tracks (all by default), ordered as above."""
    if not frames:
        raise AgcnError("no frames to track")
    if max_people is not None and max_people < 0:
        raise AgcnError(f"max_people {max_people} is negative")
    tracker = OnlineTracker(max_gap, gate)
    track = [tracker.update(t, f) for t, f in enumerate(frames)]  # (P,) per frame
    # every detection with a scored joint, frame by frame: N of them
    shown = [_shown(f) for f in frames]
    frame_of = np.concatenate([np.full(int(s.sum()), t, np.int64) for t, s in enumerate(shown)])
    keypoints = np.concatenate([f.keypoints[s] for f, s in zip(frames, shown, strict=True)]).astype(np.float32)
    scores = np.concatenate([f.scores[s] for f, s in zip(frames, shown, strict=True)]).astype(np.float32)
    labels = np.concatenate([k[s] for k, s in zip(track, shown, strict=True)])  # (N,) input ids or track numbers
    track_ids, track_of = np.unique(labels, return_inverse=True)
    return _assemble(keypoints, scores, frame_of, track_of.astype(np.int64), track_ids, len(frames), max_people)


class OnlineTracker:
    """The matching above, one frame at a time as frames arrive (a live stream): `update` gives each
    person of the frame its track at once. `track_people` feeds it a whole video, so the two agree.

    Per live track it holds its last two detections and nothing more, and it forgets a track once it
    can no longer be matched (unseen for more than `max_gap` + 1 frames): memory stays bounded on an
    endless stream.
    """

    def __init__(self, max_gap: int = TRACK_MAX_GAP, gate: float = TRACK_GATE) -> None:
        self.max_gap, self.gate = max_gap, gate
        self._last: int | None = None  # the latest frame number
        self._joints: tuple[int, int] | None = None  # the first frame and its joint count V
        self._given: tuple[bool, int] | None = None  # whether the first frame with a person gave ids; that frame
        self._next = 0  # the number the next new track takes
        # per live track, in order of number: its number; its last two detections, latest first (frame -1: none)
        self._number = np.zeros(0, np.int64)  # (L,)
        self._xy = np.zeros((0, 2, 0, 2), np.float32)  # (L, 2, V, 2)
        self._score = np.zeros((0, 2, 0), np.float32)  # (L, 2, V)
        self._frame = np.zeros((0, 2), np.int64)  # (L, 2)

    @property
    def live_tracks(self) -> int:
        """The tracks held now: those a person of the next frame may still be matched to, or fewer."""
        return len(self._number)

    def update(self, t: int, people: FramePeople) -> np.ndarray:
        """Frame `t`'s P people -> (P,) int64: each one's track (the input's id where the frames give ids,
        else the track's number in order of appearance), -1 for one with no joint scored above 0."""
        shown = self._checked(t, people)
        self._last = t
        self._forget(t)
        track = np.full(people.count, -1, np.int64)
        if not shown.any():
            return track
        self._given = self._given or (people.ids is not None, t)
        if people.ids is not None:  # the input's ids are the tracks: nothing to match
            track[shown] = people.ids[shown]
        else:
            xy, score = people.keypoints[shown].astype(np.float32), people.scores[shown].astype(np.float32)
            track[shown] = self._match(t, xy, score)
        return track

    def _checked(self, t: int, people: FramePeople) -> np.ndarray:
        """Frame `t`'s people, checked against the frames before -> (P,) bool: those with a joint scored."""
        if self._last is not None and t <= self._last:
            raise AgcnError(f"frame {t} after frame {self._last}: frames must come in order")
        first, v = self._joints or (t, people.keypoints.shape[1])
        if people.keypoints.shape[1:] != (v, 2) or people.scores.shape != people.keypoints.shape[:2]:
            raise AgcnError(
                f"frames of different joint counts to track (frame {first} has {v} joints; frame {t} has "
                f"keypoints of shape {people.keypoints.shape} and scores of shape {people.scores.shape})"
            )
        shown = _shown(people)
        if shown.any() and self._given and self._given[0] != (people.ids is not None):
            without = t if self._given[0] else self._given[1]  # the first frame without ids, as in `track_people`
            raise AgcnError(f"person ids are given in some frames but not in frame {without}; give them in all or none")
        if shown.any() and people.ids is not None:
            unique, counts = np.unique(people.ids[shown], return_counts=True)
            if (counts > 1).any():
                raise AgcnError(f"frame {t}: person id {unique[counts > 1][0]} is given to two people")
        if self._joints is None:
            self._joints = first, v
            self._xy, self._score = np.zeros((0, 2, v, 2), np.float32), np.zeros((0, 2, v), np.float32)
        return shown

    def _forget(self, t: int) -> None:
        """Drop the tracks too long unseen to be matched at frame `t` or after."""
        live = self._frame[:, 0] >= t - self.max_gap - 1
        if not live.all():
            self._number, self._xy, self._score, self._frame = (
                a[live] for a in (self._number, self._xy, self._score, self._frame)
            )

    def _match(self, t: int, xy: np.ndarray, score: np.ndarray) -> np.ndarray:
        """(m, V, 2), (m, V) frame `t`'s detections -> (m,) their tracks' numbers; holds them as the tracks' latest."""
        expected = _expected(self._xy, self._score, self._frame, t)
        rows, cols = greedy_assignment(_pair_cost(expected, self._score[:, 0], xy, score), self.gate)
        new = np.setdiff1d(np.arange(len(xy)), cols)  # in the estimator's order
        number = np.empty(len(xy), np.int64)
        number[cols] = self._number[rows]
        number[new] = self._next + np.arange(new.size)
        self._next += new.size
        for held, now in ((self._xy, xy[cols]), (self._score, score[cols]), (self._frame, t)):
            held[rows] = held[rows, ::-1]  # the latest detection becomes the one before
            held[rows, 0] = now
        if new.size:  # new tracks join at the end, keeping the order of numbers (ties in costs go by it)
            self._number = np.concatenate([self._number, number[new]])
            self._xy = np.concatenate([self._xy, np.stack([xy[new], np.zeros_like(xy[new])], axis=1)])
            self._score = np.concatenate([self._score, np.stack([score[new], np.zeros_like(score[new])], axis=1)])
            self._frame = np.concatenate([self._frame, np.tile(np.array([t, -1], np.int64), (new.size, 1))])
        return number


def _shown(people: FramePeople) -> np.ndarray:
    """(P,) bool: the people with a joint scored above 0 (the others show nothing and are left out)."""
    return people.scores.max(axis=1, initial=0) > 0


def greedy_assignment(cost: np.ndarray, gate: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) costs -> (rows, cols) of the pairs taken by rising cost (ties: row, then column) while
    both are free, none costing more than `gate`.

    Each round takes every pair that is the first minimum of both its row and its column among the
    free ones: greedy would take each of them, since no pair before it shares its row or column.
    """
    cost = np.where(cost <= gate, cost, np.inf)  # NaN too
    rows, cols = np.arange(cost.shape[0]), np.arange(cost.shape[1])
    taken_rows, taken_cols = [], []
    while rows.size and cols.size:
        sub = cost[np.ix_(rows, cols)]
        best_col = sub.argmin(axis=1)  # (r,)
        best_row = sub.argmin(axis=0)  # (c,)
        r = np.flatnonzero((best_row[best_col] == np.arange(rows.size)) & np.isfinite(sub.min(axis=1)))
        if not r.size:
            break
        taken_rows.append(rows[r])
        taken_cols.append(cols[best_col[r]])
        rows, cols = np.delete(rows, r), np.delete(cols, best_col[r])
    if not taken_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(taken_rows), np.concatenate(taken_cols)


def _expected(xy: np.ndarray, score: np.ndarray, frame: np.ndarray, t: int) -> np.ndarray:
    """(n, 2, V, 2), (n, 2, V), (n, 2) each track's last two detections (latest first; frame -1: none) ->
    (n, V, 2): where its joints should be at frame `t`, moving on at the speed between those two (a joint
    not scored in both stays where it was last seen). A person walking past another through frames
    nobody was detected in keeps their track."""
    expected = xy[:, 0].copy()
    moving = frame[:, 1] >= 0
    if moving.any():
        a, b, at = xy[moving], score[moving], frame[moving]
        speed = (a[:, 0] - a[:, 1]) / (at[:, 0] - at[:, 1])[:, None, None]
        seen = ((b[:, 0] > 0) & (b[:, 1] > 0))[..., None]
        expected[moving] += np.where(seen, speed * (t - at[:, 0])[:, None, None], 0)
    return expected


def _boxes(xy: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(n, V, 2), (n, V) -> (n, 4) x1, y1, x2, y2 around the joints scored above 0."""
    scored = (score > 0)[..., None]
    return np.concatenate([np.where(scored, xy, np.inf).min(axis=1), np.where(scored, xy, -np.inf).max(axis=1)], 1)


def _pair_cost(a_xy: np.ndarray, a_score: np.ndarray, b_xy: np.ndarray, b_score: np.ndarray) -> np.ndarray:
    """(n, V, 2), (n, V) tracks' latest people and (m, V, 2), (m, V) detections -> (n, m) costs."""
    both = (a_score[:, None] > 0) & (b_score[None] > 0)  # (n, m, V)
    dist = np.linalg.norm(a_xy[:, None] - b_xy[None], axis=-1)  # (n, m, V)
    shared = both.sum(axis=-1)
    mean = np.where(shared > 0, (dist * both).sum(axis=-1) / np.maximum(shared, 1), np.inf)  # (n, m)
    a, b = _boxes(a_xy, a_score)[:, None], _boxes(b_xy, b_score)[None]  # (n, 1, 4), (1, m, 4)
    size_a = np.maximum((a[..., 2:] - a[..., :2]).max(axis=-1), 1.0)
    size_b = np.maximum((b[..., 2:] - b[..., :2]).max(axis=-1), 1.0)
    overlap = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None).prod(axis=-1)
    union = (a[..., 2:] - a[..., :2]).prod(axis=-1) + (b[..., 2:] - b[..., :2]).prod(axis=-1) - overlap
    iou = np.where(union > 0, overlap / np.maximum(union, 1e-9), 0.0)
    return mean / ((size_a + size_b) / 2) + (1 - iou)


def _assemble(
    keypoints: np.ndarray,
    scores: np.ndarray,
    frame_of: np.ndarray,
    track_of: np.ndarray,
    track_ids: np.ndarray,
    num_frames: int,
    max_people: int | None,
) -> Tracks:
    """Detections with their tracks -> `Tracks`, rows by frame count (most first), then first appearance."""
    n, v = len(track_ids), keypoints.shape[1]
    counts = np.bincount(track_of, minlength=n)  # frames held: one detection per track and frame
    first = np.full(n, len(track_of), np.int64)
    np.minimum.at(first, track_of, np.arange(len(track_of)))
    order = np.lexsort((first, -counts))[:max_people]
    row = np.full(n, -1, np.int64)
    row[order] = np.arange(order.size)
    kept = row[track_of] >= 0
    keypoint = np.zeros((order.size, num_frames, v, 2), np.float32)
    keypoint_score = np.zeros((order.size, num_frames, v), np.float32)
    keypoint[row[track_of[kept]], frame_of[kept]] = keypoints[kept]
    keypoint_score[row[track_of[kept]], frame_of[kept]] = scores[kept]
    return Tracks(keypoint, keypoint_score, track_ids[order])
