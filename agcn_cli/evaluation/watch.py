"""`agcn watch`: trained models run over time, per person, live or from a file (data_specs/watch.md).

Frames come in one at a time (`sources/sequences`: a file's frames in order, or a live stream's);
every `stride` frames, each person present gets a window of the last `window` frames, prepared as
`agcn predict` prepares a sample of its kind (`pkl.convert_annotation`: the same normalisation; then
`skeleton/views`: the checkpoint's stream on the whole window and its test views), scored by each
checkpoint, fused as `agcn predict` fuses them, and turned into segments per person
(`segments.Segmenter`). All windows due at a frame, of every person, go through each model in one
batch, as soon as the frame arrives.

Doing less work, with `agcn eval`'s probabilities unchanged (to 1e-5 in float32, tested):
- a window's test clips that are the same clip are scored once and counted as many times (with the
  default window, the training clip length, all 10 of UniformSampleFrames' test clips are the
  window itself: 1 model pass instead of 10);
- a person alone fills one of the model's two person slots; in eval mode the slots meet only in
  the mean of their pooled features, so the empty slot's features are computed once per clip
  length (`models.agcn.person_features`) and the model runs on one person, not two.
"""

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..engine.device import autocast, tf32
from ..errors import AgcnError
from ..models.agcn import classify, person_features
from ..pose.people import FramePeople
from ..pose.track import OnlineTracker
from ..skeleton.layouts import Layout
from ..skeleton.streams import compute_stream
from ..skeleton.views import ViewSpec, clip_indices, gather_frames
from ..sources.pkl import AnnotationJob, convert_annotation, layout_signature
from ..sources.sequences import Frame, Sequence
from .segments import SEGMENTS_CSV_HEADER, SEGMENTS_FORMAT, SEGMENTS_VERSION, Segment, Segmenter


@dataclass
class WatchSettings:
    """How windows are cut, scored and joined (the options of `agcn watch`)."""

    window: int  # frames a window
    stride: int  # frames between windows
    pairs: bool = False  # the two nearest people together (mutual actions), else each person alone
    smooth: int = 3  # windows averaged for a segment's label (segments.Segmenter)
    threshold: float = 0.0  # below this smoothed probability: "no action"
    min_segment: int = 0  # frames; a shorter run joins a neighbour
    min_present: float = 0.5  # a person is scored in a window where they are in at least this share of its frames
    leave_after: int = 30  # frames without a person before their segments end
    top: int = 3  # classes listed per window
    bf16: bool = False  # bfloat16 autocast (where the CPU has the units)


@dataclass
class Scorer:
    """One checkpoint ready to score windows: model (eval, on its device), its test views, weight."""

    model: torch.nn.Module
    spec: ViewSpec
    weight: float
    device: torch.device
    _empty: dict[int, torch.Tensor] = field(default_factory=dict)  # clip length -> empty slot's features

    def empty_features(self, c: int, length: int, v: int) -> torch.Tensor:
        if length not in self._empty:
            zeros = torch.zeros(1, c, length, v, device=self.device)
            self._empty[length] = person_features(self.model, zeros, 1)
        return self._empty[length]


@dataclass
class WindowResult:
    person: object  # id, or (id, id) for a pair
    start: int
    end: int
    probs: np.ndarray  # (num_classes,) fused, float64
    top: list[tuple[int, str, float]]


@dataclass
class _Person:
    first: int
    last: int
    frames: deque = field(default_factory=deque)  # (t, keypoints (V, C), scores (V,) or None), recent ones


class Watcher:
    """Windows of every person of one sequence, scored as frames arrive."""

    def __init__(self, scorers: list[Scorer], names: list[str], settings: WatchSettings, seq: Sequence):
        if settings.window < 1 or settings.stride < 1:
            raise AgcnError(f"--window and --stride must be at least 1, got {settings.window} and {settings.stride}")
        self.scorers, self.names, self.s, self.seq = scorers, names, settings, seq
        self.layout: Layout = seq.layout
        self.people: dict[object, _Person] = {}
        self.segmenters: dict[object, Segmenter] = {}
        self.tracker = OnlineTracker()
        self.origin: int | None = None  # the first frame: windows end at origin + window - 1 + k * stride
        self.last: int | None = None
        self.windows = 0

    # ---- frames in ----------------------------------------------------------------------------

    def push(self, frame: Frame) -> list[WindowResult | Segment]:
        t = frame.t
        if self.last is not None and t <= self.last:
            raise AgcnError(f"frame {t} after frame {self.last}: frames must come in order")
        if self.origin is None:
            self.origin = t
        ids = frame.ids
        if any(i is None for i in ids):  # no ids from the input: the tracker gives them
            people = FramePeople(frame.keypoints[..., :2], frame.scores if frame.scores is not None
                                 else (frame.keypoints != 0).any(-1).astype(np.float32))  # fmt: skip
            ids = self.tracker.update(t, people).tolist()
        for k, pid in enumerate(ids):
            if pid is None or pid == -1:
                continue
            person = self.people.setdefault(pid, _Person(t, t))
            person.last = t
            person.frames.append((t, frame.keypoints[k], None if frame.scores is None else frame.scores[k]))
        events: list[WindowResult | Segment] = []
        previous = self.last if self.last is not None else t - 1
        self.last = t
        first_end = self.origin + self.s.window - 1
        for end in range(previous + 1, t + 1):  # windows ending at skipped frames too
            if end >= first_end and (end - first_end) % self.s.stride == 0:
                events += self._windows_ending(end)
        events += self._leavers(t)
        for person in self.people.values():  # keep the frames a window can still use
            while person.frames and person.frames[0][0] <= t - self.s.window:
                person.frames.popleft()
        return events

    def close(self) -> list[Segment]:
        """The segments still open, at the end of the input."""
        out: list[Segment] = []
        for key, seg in self.segmenters.items():
            out += seg.close(self._last_frame(key))
        self.segmenters.clear()
        return out

    # ---- windows ------------------------------------------------------------------------------

    def _leavers(self, t: int) -> list[Segment]:
        out: list[Segment] = []
        gone = {pid for pid, p in self.people.items() if p.last < t - self.s.leave_after}
        for key in [k for k in self.segmenters if set(k if isinstance(k, tuple) else (k,)) & gone]:
            out += self.segmenters.pop(key).close(self._last_frame(key))
        for pid in gone:
            del self.people[pid]
        return out

    def _last_frame(self, key: object) -> int:
        ids = key if isinstance(key, tuple) else (key,)
        return max(self.people[i].last for i in ids if i in self.people) if any(i in self.people for i in ids) \
            else (self.last or 0)  # fmt: skip

    def _window_of(self, pid: object, end: int) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(W, V, C) keypoints, (W, V) scores or None, frames present, of person `pid` in the window
        ending at `end`; zeros where they are absent."""
        w = self.s.window
        frames = [f for f in self.people[pid].frames if end - w < f[0] <= end]
        if not frames:
            return np.zeros((w, self.layout.num_joints, 3), np.float32), None, 0
        rows = np.fromiter((f[0] for f in frames), np.int64, len(frames)) - (end - w + 1)
        kp = np.zeros((w, *frames[0][1].shape), np.float32)
        kp[rows] = np.stack([f[1] for f in frames])
        score = None
        if frames[0][2] is not None:
            score = np.zeros((w, kp.shape[1]), np.float32)
            score[rows] = np.stack([f[2] for f in frames])
        return kp, score, len(frames)

    def _units(self, windows: dict) -> list[tuple[object, list[object]]]:
        """(key, person ids) scored in a window: each person alone, or pairs. `windows`: the
        window (`_window_of`) of each person there since it began and present enough in it."""
        here = list(windows)
        if not self.s.pairs or len(here) < 2:
            return [(pid, [pid]) for pid in here]
        centre = {pid: _centre(windows[pid][0]) for pid in here}
        free, units = list(here), []
        dist = {(a, b): float(np.linalg.norm(centre[a] - centre[b])) for a in here for b in here if a != b}
        for a, b in sorted(dist, key=dist.get):  # nearest pairs first
            if a in free and b in free:
                first, second = sorted((a, b), key=lambda i: (self.people[i].first, here.index(i)))
                units.append(((first, second), [first, second]))
                free.remove(a)
                free.remove(b)
        return units + [(pid, [pid]) for pid in free]

    def _sample(self, parts: list[tuple], end: int) -> np.ndarray:
        """(2, T, V, C) the windows `parts` (`_window_of`, one a person) as a split file would store them."""
        kp = np.stack([p[0] for p in parts])  # (m, W, V, C)
        if self.seq.stored:
            out = np.zeros((2, *kp.shape[1:]), np.float32)
            out[: len(parts)] = kp
            return out
        ann = {"frame_dir": self.seq.name, "keypoint": kp, "total_frames": kp.shape[1]}
        if parts[0][1] is not None:
            ann["keypoint_score"] = np.stack([p[1] for p in parts])
            ann["img_shape"] = self.seq.img_shape
        job = AnnotationJob(self.seq.name, f"{self.seq.source}: frames {end - kp.shape[1] + 1}-{end}", "test",
                            {**ann, "label": 0})  # fmt: skip
        return convert_annotation(job, self.layout, layout_signature(self.layout), 1).sample

    def _windows_ending(self, end: int) -> list[WindowResult | Segment]:
        w, need = self.s.window, self.s.min_present * self.s.window
        windows = {pid: self._window_of(pid, end) for pid, p in self.people.items() if p.first <= end - w + 1}
        windows = {pid: win for pid, win in windows.items() if win[2] >= need}  # present in enough of it
        units = self._units(windows)
        if not units:
            return []
        samples = [self._sample([windows[i] for i in ids], end) for _, ids in units]
        alone = np.array([len(ids) == 1 for _, ids in units])
        probs = [score_windows(sc, samples, alone, self.layout, self.s.bf16) for sc in self.scorers]
        fused = np.zeros_like(probs[0], dtype=np.float64)
        total = sum(sc.weight for sc in self.scorers)
        for sc, p in zip(self.scorers, probs, strict=True):
            fused += (sc.weight / total) * p
        events: list[WindowResult | Segment] = []
        start = end - self.s.window + 1
        for (key, ids), row in zip(units, fused, strict=True):
            best = np.argsort(-row, kind="stable")[: self.s.top]
            events.append(WindowResult(key, start, end, row, [(int(c), self.names[c], float(row[c])) for c in best]))
            seg = self.segmenters.get(key)
            if seg is None:
                seg = self.segmenters[key] = Segmenter(key, self.s.window, self.s.stride, self.names,
                                                       smooth=self.s.smooth, threshold=self.s.threshold,
                                                       min_frames=self.s.min_segment)  # fmt: skip
            events += seg.add(end, row, max(self.people[i].first for i in ids))
            self.windows += 1
        return events


def _centre(keypoints: np.ndarray) -> np.ndarray:
    """(C,) the mean of a window's (W, V, C) joints where the person is seen."""
    seen = (keypoints != 0).any(-1)  # (W, V)
    return keypoints[seen].mean(0) if seen.any() else np.zeros(keypoints.shape[-1])


@torch.no_grad()
def score_windows(sc: Scorer, samples: list[np.ndarray], alone: np.ndarray, layout: Layout, bf16: bool) -> np.ndarray:
    """(N, num_classes) float64: `agcn eval`'s mean over the test views of the softmax, for windows
    (2, T, V, C) as stored; `alone` (N,): the second person slot is empty."""
    spec = replace(sc.spec, layout=layout)
    streams = [compute_stream(s.transpose(3, 1, 2, 0), spec.base, layout) for s in samples]  # (C, T, V, M) each
    lengths = np.array([x.shape[1] for x in streams], np.int64)
    frames = np.concatenate(streams, axis=1)  # (C, F, V, M), the windows back to back
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    idx = clip_indices(lengths, spec)  # (N, K, L)
    rows, owner, weight = [], [], []
    for n in range(len(samples)):  # the distinct clips of each window, with how often each is drawn
        unique, counts = np.unique(idx[n], axis=0, return_counts=True)
        rows.append(unique)
        owner += [n] * len(unique)
        weight += (counts / idx.shape[1]).tolist()
    clips = torch.from_numpy(gather_frames(frames, np.asarray(starts)[owner], np.concatenate(rows)))  # (U, C, L, V, M)
    clips = clips.to(sc.device)
    owner_t, weight_t = torch.tensor(owner), torch.tensor(weight, dtype=torch.float64)
    single = torch.from_numpy(alone[owner])
    logits = torch.empty(len(owner), sc.model.fc.out_features)
    with tf32(False), autocast(sc.device, torch.bfloat16 if bf16 else None):
        if single.any():
            x = clips[single][..., 0]  # (S, C, L, V): the one person
            empty = sc.empty_features(x.shape[1], x.shape[2], x.shape[3])
            logits[single] = classify(sc.model, (person_features(sc.model, x, 0) + empty) / 2).float().cpu()
        if (~single).any():
            logits[~single] = sc.model(clips[~single]).float().cpu()
    probs = logits.softmax(-1).double() * weight_t[:, None]
    out = torch.zeros(len(samples), probs.shape[1], dtype=torch.float64).index_add_(0, owner_t, probs)
    return out.numpy()


def watch_frames(frames: Iterable[Frame], watcher: Watcher) -> Iterator[WindowResult | Segment]:
    """Every event of a sequence's frames, then the segments left open at its end."""
    for frame in frames:
        yield from watcher.push(frame)
    yield from watcher.close()


def default_min_segment(window: int) -> int:
    return max(1, window // 2)


def check_settings(s: WatchSettings) -> None:
    if not 0 <= s.threshold <= 1 or not math.isfinite(s.threshold):
        raise AgcnError(f"--threshold must be in [0, 1], got {s.threshold}")
    if s.smooth < 1 or s.top < 1 or s.min_segment < 0 or s.leave_after < 0:
        raise AgcnError("--smooth and --top must be at least 1, --min-segment and --leave-after at least 0")


# ---- the whole command ---------------------------------------------------------------------------


@dataclass
class WatchPlan:
    """What `agcn watch` runs: the scorers, the class names, the settings, the layout of the input."""

    scorers: list[Scorer]
    names: list[str]
    settings: WatchSettings
    layout: Layout
    clip_len: int  # the checkpoints' training clip length (the default window)


def plan_watch(
    checkpoints: list, weights: list[float] | None, settings: WatchSettings | None, *,
    window: int | None, device: str = "cpu", note: Callable[[str], None] | None = None,
) -> WatchPlan:  # fmt: skip
    """Load and check the checkpoints; `window` None: the training clip length."""
    from ..engine.device import resolve_device
    from .fusion import check_weights
    from .metrics import class_names
    from .predict import load_checkpoints
    from .scoring import checkpoint_views

    note = note or (lambda _: None)
    weights = [1.0] * len(checkpoints) if weights is None else check_weights(weights, checkpoints, noun="checkpoints")
    models, layout = load_checkpoints(checkpoints, None, None, note)
    for m in models:
        if m.data.test_window:
            raise AgcnError(
                f"{m.path}: trained on the 2s-AGCN full window of {m.data.test_window} frames; agcn watch scores "
                "windows with uniform test clips: use a checkpoint trained with --sampling uniform"
            )
    clip_len = models[0].data.clip_len
    settings = settings or WatchSettings(window=0, stride=8)
    settings = replace(settings, window=window or clip_len)
    check_settings(settings)
    dev = resolve_device(device)
    scorers = []
    for m, w in zip(models, weights, strict=True):
        m.model.eval().to(dev)
        scorers.append(Scorer(m.model, replace(checkpoint_views(m.data), layout=layout), w, dev))
    k = models[0].model.config.num_classes
    names = class_names(k, models[0].data.benchmark, label_names=models[0].data.label_names)
    return WatchPlan(scorers, names, settings, layout, clip_len)


def run_watch(plan: WatchPlan, path: Path | None, *, lines: Iterable[str] | None = None,
              samples: list[str] | None = None, frame_size: tuple[int, int] | None = None,
              ) -> Iterator[tuple[str, str, object]]:  # fmt: skip
    """("window" | "segment" | "error", sequence name, WindowResult | Segment | message) as they come,
    for a file input (`path`) or a live stream (`lines`, JSON lines)."""
    from ..skeleton.normalize import DEFAULT_IMG_SHAPE
    from ..sources.sequences import LineError, open_sequences, stream_frames

    layout, w = plan.layout, plan.settings.window
    if lines is not None:
        raw = len(layout.channels) - ("score" in layout.channels)
        img_shape = (frame_size or DEFAULT_IMG_SHAPE) if raw == 2 else None
        seq = Sequence("-", "-", layout, img_shape, False, stream_frames(lines, layout.num_joints, raw))
        watcher, frames = Watcher(plan.scorers, plan.names, plan.settings, seq), 0
        for item in seq.frames:
            if isinstance(item, LineError):
                yield "error", "-", f"-: line {item.line}: {item.message}"
                continue
            frames += 1
            yield from ((_kind(e), "-", e) for e in watcher.push(item))
        yield from (("segment", "-", e) for e in watcher.close())
        if frames and not watcher.windows and frames < w:
            yield "error", "-", f"-: the stream ended after {frames} frames, fewer than --window {w}"
        return
    try:
        for seq in open_sequences(path, layout=layout, names=samples):
            if not seq.layout.same_topology(layout):
                raise AgcnError(f"{seq.source}: holds {seq.layout.name} skeletons, the checkpoint is for {layout.name}")
            if seq.total is not None and seq.total < w:
                short = f"{seq.total} frames, fewer than --window {w}; pass --window {seq.total} or less"
                yield "error", seq.name, f"{seq.source}: {short}"
                continue
            watcher = Watcher(plan.scorers, plan.names, plan.settings, seq)
            for event in watch_frames(seq.frames, watcher):
                yield _kind(event), seq.name, event
    except AgcnError as e:
        if path is not None and not str(e).startswith(str(path)):
            raise AgcnError(f"{path}: {e}") from None
        raise


def _kind(event: object) -> str:
    return "window" if isinstance(event, WindowResult) else "segment"


def write_segments(path: Path, segments: list[tuple[str, Segment]], plan: WatchPlan, source: str) -> None:
    """The segments file (`--out`): JSON (`agcn plot` draws it) or CSV, written whole."""
    import csv
    import io
    import json

    from ..io.atomic import atomic_output

    several = len({name for name, _ in segments}) > 1
    rows = []
    for name, s in segments:
        person = list(s.person) if isinstance(s.person, tuple) else s.person
        if several:
            person = f"{name}:{'+'.join(map(str, s.person)) if isinstance(s.person, tuple) else s.person}"
        rows.append({"person": person, "start": s.start, "end": s.end, "class": s.cls, "name": s.name,
                     "probability": round(s.probability, 6)})  # fmt: skip
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, list(SEGMENTS_CSV_HEADER), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "person": "+".join(map(str, r["person"])) if isinstance(r["person"], list)
                             else r["person"]})  # fmt: skip
        text = buf.getvalue()
    else:
        people = list(dict.fromkeys(json.dumps(r["person"]) for r in rows))
        text = json.dumps({
            "format": SEGMENTS_FORMAT, "version": SEGMENTS_VERSION, "input": source,
            "frames": max((r["end"] for r in rows), default=-1) + 1,
            "window": plan.settings.window, "stride": plan.settings.stride, "classes": plan.names,
            "people": [json.loads(p) for p in people], "segments": rows,
        }, indent=1)  # fmt: skip
    with atomic_output(path) as tmp:
        tmp.write_text(text)
