"""Windows into segments: one person's (or pair's) window probabilities over time -> "frames 0-112
drink water, 113-240 sit down" (data_specs/watch.md, "Segments").

The rule, in order, for the windows of one person as they come (each window ends `stride` frames
after the last):
1. Smoothing: a window's probabilities are the mean of those of the `smooth` windows centred on it
   (fewer at the ends of the person's time).
2. Label: the class of the largest smoothed probability, or "no action" (-1) below `threshold`.
3. Frames: a window speaks for the `stride` frames around its centre; the first window also for the
   frames before that since the person appeared, the last for those after it until they left.
   Where the label changes, the new one starts where the smoothed probability of the new class
   overtakes the old one's, interpolated linearly between the two windows' centres.
4. Runs of one label are joined; a run shorter than `min_frames` is given to the run before it, or
   to the next one where there is none before it still open (the person's first run, or the first
   after a final segment), and equal neighbours are joined.
5. A segment is final, and emitted, once the run after it is `min_frames` long in windows whose
   smoothing is complete; the rest at the end. The result is the same whether the windows arrive
   live or from a file: the same code sees the same windows in the same order.
A segment's probability is the mean over its windows of the smoothed probability of its class (of
the best class for "no action").
"""

from dataclasses import dataclass, field

import numpy as np

NO_ACTION = -1
NO_ACTION_NAME = "no action"
# the segments file of `agcn watch --out` (written by evaluation/watch, read by viz/timeline)
SEGMENTS_FORMAT, SEGMENTS_VERSION = "agcn-segments", 1  # the JSON's "format" and "version"
SEGMENTS_CSV_HEADER = ("person", "start", "end", "class", "name", "probability")


@dataclass
class Segment:
    person: object  # the person's id (int or str), or a pair of them
    start: int  # first frame
    end: int  # last frame (inclusive)
    cls: int  # class, or NO_ACTION
    name: str
    probability: float


@dataclass
class _Run:
    cls: int
    start: int
    end: int
    probability: list[float] = field(default_factory=list)


class Segmenter:
    """The segments of one person, from their windows in time order."""

    def __init__(self, person: object, window: int, stride: int, names: list[str], *, smooth: int = 3,
                 threshold: float = 0.0, min_frames: int = 0):  # fmt: skip
        self.person, self.window, self.stride, self.names = person, window, stride, names
        self.half = max(smooth, 1) // 2
        self.threshold, self.min_frames = threshold, min_frames
        self._probs: list[np.ndarray] = []  # every window's fused probabilities (k,)
        self._ends: list[int] = []
        self._fixed = 0  # windows labelled so far (their smoothing complete)
        self._runs: list[_Run] = []  # runs not yet emitted
        self._first: int | None = None  # the person's first frame
        self._previous: tuple | None = None  # the last labelled window's centre and smoothed probabilities

    def add(self, end: int, probs: np.ndarray, first_frame: int) -> list[Segment]:
        """The window ending at frame `end` with fused probabilities (k,); the person appeared at
        `first_frame`. Returns the segments that became final."""
        if self._first is None:
            self._first = first_frame
        self._probs.append(np.asarray(probs, np.float64))
        self._ends.append(end)
        out: list[Segment] = []
        while self._fixed + self.half < len(self._probs):  # its smoothing has all its windows
            self._label(self._fixed, last_frame=None)
            self._fixed += 1
            out += self._settle()
        return out

    def close(self, last_frame: int) -> list[Segment]:
        """The remaining segments, the person's time ending at `last_frame`."""
        while self._fixed < len(self._probs):
            self._label(self._fixed, last_frame if self._fixed == len(self._probs) - 1 else None)
            self._fixed += 1
        if self._runs and self._runs[-1].end < last_frame:
            self._runs[-1].end = last_frame
        runs, self._runs = _absorb(self._runs, self.min_frames), []
        return [self._segment(r) for r in runs]

    def _label(self, i: int, last_frame: int | None) -> None:
        lo, hi = max(0, i - self.half), min(len(self._probs), i + self.half + 1)
        q = np.mean(self._probs[lo:hi], axis=0)
        best = int(np.argmax(q))
        cls = best if q[best] >= self.threshold else NO_ACTION
        centre = self._ends[i] - (self.window - 1) / 2
        start = self._first if i == 0 else int(np.floor(centre - self.stride / 2)) + 1
        end = int(np.floor(centre + self.stride / 2))
        if last_frame is not None:
            end = max(end, last_frame)
        if self._runs:
            start = self._runs[-1].end + 1  # blocks tile the frames
        if self._runs and self._runs[-1].cls == cls:
            self._runs[-1].end = end
            self._runs[-1].probability.append(float(q[best]))
        else:
            if self._runs and self._previous is not None:  # the change: where the two classes' curves cross
                start = self._crossing(self._previous, (centre, q), self._runs[-1].cls, cls, start)
                self._runs[-1].end = start - 1
            self._runs.append(_Run(cls, start, max(end, start), [float(q[best])]))
        self._previous = (centre, q)

    def _crossing(self, before: tuple, after: tuple, old: int, new: int, fallback: int) -> int:
        """The first frame of the new label: between the two windows' centres, where the smoothed
        probability of the new class overtakes the old one's (linear between them); for a change
        to or from "no action", where the best probability crosses the threshold."""
        (c0, q0), (c1, q1) = before, after
        d0 = (
            (q0[old] - q0[new])
            if NO_ACTION not in (old, new)
            else (q0.max() - self.threshold) * (1 if new == NO_ACTION else -1)
        )
        d1 = (
            (q1[old] - q1[new])
            if NO_ACTION not in (old, new)
            else (q1.max() - self.threshold) * (1 if new == NO_ACTION else -1)
        )
        if not d0 > 0 >= d1 or self._runs[-1].start > c1:
            return fallback
        x = c0 + (c1 - c0) * d0 / (d0 - d1)
        return max(self._runs[-1].start + 1, int(np.floor(x)) + 1)

    def _settle(self) -> list[Segment]:
        """Emit the runs before the last one once the last is long enough to stay (a long run is
        never absorbed: it stays the last, joined with an equal neighbour at most)."""
        last = self._runs[-1]
        if len(self._runs) < 2 or last.end - last.start + 1 < self.min_frames:
            return []
        runs = _absorb(self._runs, self.min_frames)
        self._runs = [runs[-1]]
        return [self._segment(r) for r in runs[:-1]]

    def _segment(self, run: _Run) -> Segment:
        name = NO_ACTION_NAME if run.cls == NO_ACTION else self.names[run.cls]
        return Segment(self.person, run.start, run.end, run.cls, name, float(np.mean(run.probability)))


def _absorb(runs: list[_Run], min_frames: int) -> list[_Run]:
    """Runs shorter than `min_frames` given to the run before (the next at the start), then equal
    neighbours joined."""
    runs = [_Run(r.cls, r.start, r.end, list(r.probability)) for r in runs]
    out: list[_Run] = []
    for r in runs:
        short = r.end - r.start + 1 < min_frames
        if out and (short or out[-1].cls == r.cls):
            out[-1].end = r.end
            if out[-1].cls == r.cls:
                out[-1].probability += r.probability
        else:
            out.append(r)
    if len(out) > 1 and out[0].end - out[0].start + 1 < min_frames:  # a short first run: to the next
        out[1].start = out[0].start
        out.pop(0)
    return out
