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
    v = frames[0].keypoints.shape[1]
    if any(f.keypoints.shape[1:] != (v, 2) or f.scores.shape != f.keypoints.shape[:2] for f in frames):
        raise AgcnError(f"frames of different joint counts to track (frame 0 has {v} joints)")
    if max_people is not None and max_people < 0:
        raise AgcnError(f"max_people {max_people} is negative")
    # every detection with a scored joint, frame by frame: N of them
    shown = [f.scores.max(axis=1, initial=0) > 0 for f in frames]
    frame_of = np.concatenate([np.full(int(s.sum()), t, np.int64) for t, s in enumerate(shown)])
    keypoints = np.concatenate([f.keypoints[s] for f, s in zip(frames, shown, strict=True)]).astype(np.float32)
    scores = np.concatenate([f.scores[s] for f, s in zip(frames, shown, strict=True)]).astype(np.float32)
    given = [f.ids is not None for f, s in zip(frames, shown, strict=True) if s.any()]
    if all(given) and given:
        ids = np.concatenate([f.ids[s] for f, s in zip(frames, shown, strict=True) if s.any()]).astype(np.int64)
        track_of, track_ids = _by_id(ids, frame_of)
    elif any(given):
        t = next(t for t, (f, s) in enumerate(zip(frames, shown, strict=True)) if s.any() and f.ids is None)
        raise AgcnError(f"person ids are given in some frames but not in frame {t}; give them in all or none")
    else:
        track_of = _match(keypoints, scores, frame_of, len(frames), max_gap, gate)
        track_ids = np.arange(track_of.max(initial=-1) + 1, dtype=np.int64)
    return _assemble(keypoints, scores, frame_of, track_of, track_ids, len(frames), max_people)


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


def _by_id(ids: np.ndarray, frame_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input's ids -> (track of each detection (N,), id of each track)."""
    track_ids, track_of = np.unique(ids, return_inverse=True)
    pairs = track_of * (frame_of.max() + 1) + frame_of
    unique, counts = np.unique(pairs, return_counts=True)
    if (counts > 1).any():
        twice = unique[counts > 1][0]
        t, i = twice % (frame_of.max() + 1), track_ids[twice // (frame_of.max() + 1)]
        raise AgcnError(f"frame {t}: person id {i} is given to two people")
    return track_of.astype(np.int64), track_ids.astype(np.int64)


def _match(
    keypoints: np.ndarray, scores: np.ndarray, frame_of: np.ndarray, num_frames: int, max_gap: int, gate: float
) -> np.ndarray:
    """(N, V, 2), (N, V), (N,) frame of each detection (ascending) -> (N,) track of each, numbered in
    order of appearance."""
    track_of = np.empty(len(frame_of), np.int64)
    latest = np.empty(len(frame_of), np.int64)  # per track: its latest detection
    previous = np.full(len(frame_of), -1, np.int64)  # per track: the detection before that (-1: none)
    tracks = 0
    starts = np.searchsorted(frame_of, np.arange(num_frames + 1))
    for t in range(num_frames):  # sequential: each frame matches against the tracks so far
        lo, hi = starts[t], starts[t + 1]
        if lo == hi:
            continue
        live = np.flatnonzero(frame_of[latest[:tracks]] >= t - max_gap - 1)
        last = latest[live]
        expected = _expected(keypoints, scores, frame_of, last, previous[live], t)
        cost = _pair_cost(expected, scores[last], keypoints[lo:hi], scores[lo:hi])
        rows, cols = greedy_assignment(cost, gate)
        track_of[lo + cols] = live[rows]
        new = np.setdiff1d(np.arange(hi - lo), cols)  # in the estimator's order
        track_of[lo + new] = tracks + np.arange(new.size)
        tracks += new.size
        previous[live[rows]] = last[rows]
        latest[track_of[lo:hi]] = np.arange(lo, hi)
    return track_of


def _expected(
    keypoints: np.ndarray, scores: np.ndarray, frame_of: np.ndarray, last: np.ndarray, before: np.ndarray, t: int
) -> np.ndarray:
    """(n, V, 2): where each track's joints should be at frame `t`, moving on at the speed between its
    last two detections (a joint not scored in both stays where it was last seen). A person walking
    past another through frames nobody was detected in keeps their track."""
    expected = keypoints[last].copy()
    moving = before >= 0
    if moving.any():
        a, b = last[moving], before[moving]
        speed = (keypoints[a] - keypoints[b]) / (frame_of[a] - frame_of[b])[:, None, None]
        seen = ((scores[a] > 0) & (scores[b] > 0))[..., None]
        expected[moving] += np.where(seen, speed * (t - frame_of[a])[:, None, None], 0)
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
