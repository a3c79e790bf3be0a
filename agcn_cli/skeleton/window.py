"""The full window (2s-AGCN's `--sampling full`): how a sample continues past its real frames.

Pure numpy. The reference pads every sample to a 300-frame array; agcn stores the real frames
only and rebuilds the window as views are cut (`skeleton/views.py`). Frames past a sample's
real T continue as its recipe's padding does (data_specs/recipes.md, "The full window"):
2s-AGCN NTU data repeat each person's frames from the start, each with its own period,
re-centred on person 0's repeated frames (its `pre_normalization`; exact from the file's
`pad_period` / `pad_centre`, `repeat_persons`; older files repeat person 0's period,
`window_periods`), Kinetics-Skeleton is zero (its `kinetics_gendata`), other data loop the whole
sample (MMAction2's `PadTo(mode='loop')`); a sample longer than the window keeps its first
`window` frames. Motion in the window of 2s-AGCN NTU data is the motion of the padded window
(`motion_of_window`), as the reference's `gen_motion_data` differences its padded arrays.

Samples are held back to back: the rows of sample i of a `(C, F, V, M)` array are
`offset[i] + range(num_frames[i])`.
"""

from dataclasses import dataclass

import numpy as np

from .persons import fit_persons


def window_padding(attrs: dict) -> str:
    """How a split's samples continue past their real frames in the full window.

    `2s-agcn`: NTU data of the 2s-agcn recipe, whose pre_normalization fills each person's empty
    trailing frames by repeating its frames from the start; `zero`: Kinetics-Skeleton, whose
    300-frame array is zero past the video; `loop`: everything else, the whole sample repeated
    (MMAction2's `PadTo`, mode 'loop').
    """
    if attrs.get("source") == "kinetics-skeleton":
        return "zero"
    return "2s-agcn" if attrs.get("recipe") == "2s-agcn" else "loop"


def motion_of_window(padding: str, stream: str) -> bool:
    """Whether `stream` in the full window of data padded as `padding` (`window_padding`) is the
    motion of the padded window (`streams.window_motion`) rather than of the real frames.

    True for joint-motion and bone-motion of 2s-AGCN NTU data (`2s-agcn`): its reference derives
    them with `gen_motion_data` on the padded 300-frame arrays (and bone-motion from
    `gen_bone_data`'s bone of those), so the 2s-agcn recipe reproduces it end to end, and a
    checkpoint's recipe and window (`DataInfo`) fix its definition for eval and predict. Other data
    keep motion of the real frames: MMAction2's data (`loop`) derive streams before padding, and
    the reference makes no Kinetics motion (`zero`; its scripts list NTU alone).
    """
    return padding == "2s-agcn" and stream in ("joint-motion", "bone-motion")


@dataclass(frozen=True)
class PadPeriods:
    """How samples held back to back continue past their real frames in the full window."""

    period: np.ndarray  # (N,) int64: window frame t >= T is the sample's frame t % period (person 0's); 0: zero
    persons: np.ndarray | None = None  # (N, M) int64: each person's own period (2s-agcn files with the facts)
    centre: np.ndarray | None = None  # (F, 3) float32: person 0's rotated centre joint per row (joint, 3D only)

    def take(self, indices: np.ndarray) -> "PadPeriods":
        """The periods of samples `indices` (N,); `centre` is by row and stays whole."""
        persons = None if self.persons is None else self.persons[indices]
        return PadPeriods(self.period[indices], persons, self.centre)


def pad_periods(
    frames: np.ndarray,
    offset: np.ndarray,
    num_frames: np.ndarray,
    padding: str,
    facts: tuple[np.ndarray, np.ndarray] | None = None,
    stream: str = "joint",
) -> PadPeriods:
    """The window padding of the samples of `frames` (C, F, V, M), a `stream` padded as `padding`.

    `facts`: a 2s-agcn file's `(periods (N, M), centre (F, 3))` (`skeleton.normalize.WindowPad`,
    stored as `pad_period` / `pad_centre`): each person repeats with its own period, re-centred
    where `stream` is 3D joints; None (other data, older files): every person follows person 0's
    period (`window_periods`).
    """
    if facts is not None and padding == "2s-agcn":
        persons = fit_persons(facts[0], axis=1)  # (N, M)
        centre = facts[1] if stream == "joint" and frames.shape[0] == 3 else None
        return PadPeriods(persons[:, 0], persons, centre)
    return PadPeriods(window_periods(frames, offset, num_frames, padding))


def window_rows(pos: np.ndarray, lengths: np.ndarray, period: np.ndarray) -> np.ndarray:
    """(N, L) frame indices of window positions `pos` (N, L) of samples `lengths` (N,) frames
    long, repeating person 0 with `period` (N,); -1: a zero frame."""
    length = lengths[:, None]  # (N, 1)
    period = period[:, None]  # (N, 1); 0: zero padding
    padded = np.where(period > 0, pos % np.maximum(period, 1), -1)
    return np.where(pos < length, pos, padded)


def repeat_persons(
    out: np.ndarray,
    frames: np.ndarray,
    centre: np.ndarray | None,
    starts: np.ndarray,
    lengths: np.ndarray,
    periods: np.ndarray,
    pos: np.ndarray,
) -> None:
    """2s-agcn's padding of each person with its own period, in place on `out` (N, C, L, V, M), a
    window gathered with person 0's period (`window_rows`) at positions `pos` (N, L).

    The samples' rows of `frames` (C, F, V, M) start at `starts` (N,), `lengths` (N,) long;
    `periods` (N, M) and `centre` (F, 3) are their `skeleton.normalize.WindowPad` facts. Window
    frame t >= T of person p, whose period Lp is not person 0's L0, becomes stored frame t % Lp
    plus, on its non-zero joints, centre[t % Lp] - centre[t % L0]: the reference's
    R(p[t % Lp] - c0[t % L0]). `centre` None (a stream other than joint): no centre term, which
    bone differences cancel wherever both joints of a bone are present.
    """
    base = periods[:, :1]  # (N, 1) L0
    past = pos >= lengths[:, None]  # (N, L)
    for p in range(1, periods.shape[1]):
        own = periods[:, p : p + 1]  # (N, 1) Lp
        n, at = np.nonzero(past & (own != base) & (own > 0))  # (K,) sample, window position
        if not len(n):
            continue
        rows = starts[n] + pos[n, at] % own[n, 0]  # (K,)
        values = frames[:, rows, :, p]  # (K, C, V): the advanced indices' axis first
        if centre is not None:
            rows0 = starts[n] + pos[n, at] % np.maximum(base[n, 0], 1)  # L0 = 0: an empty person 0, centre 0
            shift = centre[rows] - centre[rows0]  # (K, 3)
            values += shift[:, :, None] * (values != 0).any(axis=1, keepdims=True)
        out[n, :, at, :, p] = values


def window_periods(frames: np.ndarray, offset: np.ndarray, num_frames: np.ndarray, padding: str) -> np.ndarray:
    """(N,) int64: window frame t >= T is stored frame t % period (0: a zero frame).

    `2s-agcn`, for files without the window facts (`pad_period`, `pad_centre`; written before
    2026-12-01): the stored frames are the reference's first T, in which person 0's padding has
    already begun if it left before the end: its period is the first frame from which its frames
    repeat those from the start (to 1e-5; T if they never do). Every person follows it there: a
    second person with another span than person 0's (a short second body) is then centred as
    in the reference but comes in another phase (`repeat_persons` needs the facts to repeat it
    with its own period).
    """
    if padding == "zero":
        return np.zeros(len(num_frames), dtype=np.int64)
    period = num_frames.astype(np.int64)
    if padding == "loop":
        return period
    # frames equal to their sample's frame 0 (person 0), in blocks of rows: the candidate periods
    lengths = num_frames.astype(np.int64)
    sample = np.repeat(np.arange(len(lengths)), lengths)  # (F,) sample of each row
    same = np.zeros(len(sample), dtype=bool)
    person0 = frames[..., 0]  # (C, F, V)
    for a in range(0, len(sample), 1 << 16):
        rows = slice(a, a + (1 << 16))
        first = np.take(person0, offset[sample[rows]], axis=1)  # (C, n, V)
        same[rows] = (np.abs(person0[:, rows] - first) <= 1e-5).all(axis=(0, 2))
    same[offset[lengths > 0]] = False  # frame 0 itself
    for i in np.unique(sample[same]):  # usually few: samples whose person 0 left before the end
        start, length = int(offset[i]), int(lengths[i])
        person = frames[:, start : start + length, :, 0]  # (C, T, V)
        for p in np.flatnonzero(same[start : start + length]):
            if (np.abs(person[:, p:] - person[:, : length - p]) <= 1e-5).all():
                period[i] = p
                break
    return period
