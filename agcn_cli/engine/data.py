"""The data path of training and evaluation: a split file in, batches of clips `(N, C, T, V, M)` out.

`SkeletonDataset` holds one stream of a split file in memory as a (C, F, V, M) float32 array of
all samples' frames. `BatchLoader` draws a whole batch of frame indices at once
(`sampling.sample_batch_indices` in training, MMAction2's fixed-seed test clips in test mode) and
gathers the frames with one `np.take` per channel; it shuffles and shards by (seed, epoch, rank,
world_size) itself. `for x, y, idx in loader:` gives x float32 `(N, C, clip_len, V, M)`, or
`(N, num_clips, C, clip_len, V, M)` when `num_clips > 1`, y the labels and idx the sample indices
(int64), so scores can be written by sample name.

Streams: a stream materialised in the file (`agcn streams`) is read as stored; otherwise it is
derived from `joint` at load time with `streams.compute_stream_frames` on each sample's full real
frames, exactly what `agcn streams` stores (MMAction2's GenSkeFeat runs before frame sampling,
so motion must be derived on whole sequences, never after sampling).

Persons: as MMAction2's `FormatGCNInput(num_person=2)`, extra persons are dropped and missing
ones zero-padded.

The full window (`window > 0`, 2s-AGCN's recipe, `--sampling full`): each sample is seen as the
reference's array padded to `window` frames (300), one view, no frame sampling. Frames past a
sample's real T continue as its recipe's padding does (`window_padding`; data_specs/recipes.md,
"Training recipes"): 2s-AGCN NTU data repeat each person's frames from the start, each with its
own period, re-centred on person 0's repeated frames (its `pre_normalization`; exact from the
file's `pad_period` / `pad_centre`, `repeat_persons`; older files repeat person 0's period),
Kinetics-Skeleton is zero (its `kinetics_gendata`), other data loop the whole sample
(MMAction2's `PadTo(mode='loop')`); a sample longer than the window keeps its first `window`
frames. In training, `random_choose` crops a random run and `random_move` moves x, y
(`skeleton.augment`, 2s-AGCN's Kinetics augmentation), drawn per batch from the batch's generator.
Motion in the window of 2s-AGCN NTU data is the motion of the padded window, as the reference's
`gen_motion_data` differences its padded arrays (`motion_of_window`): the joints are held, padded
per batch, and differenced there; a stored motion stream (of the real frames) is not read.
"""

import queue
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import AgcnError
from ..io.splitfile import check_split_file, read_blocks, read_window_pad, split_layout
from ..skeleton.augment import draw_choose, draw_move, random_move
from ..skeleton.persons import NUM_PERSONS, fit_persons
from ..skeleton.sampling import TEST_SEED, sample_batch_indices, sample_test_clips
from ..skeleton.streams import STREAMS, compute_stream_frames, window_motion


@cache
def _test_indices(num_frames: int, clip_len: int, num_clips: int) -> np.ndarray:
    """Test clips depend on the length alone (fixed seed): computed once per length."""
    idx = sample_test_clips(num_frames, clip_len, num_clips=num_clips, seed=TEST_SEED)
    idx.flags.writeable = False
    return idx


class SkeletonDataset:
    """One stream of a split file, in memory, and how clips are cut from it.

    `frames` is a (C, F, V, M) float32 array of all samples' frames of the stream (of `joint`
    where the full window's motion is that of the padded window, `motion_of_window`), loaded once at
    construction (600 bytes a frame for NTU-25; NTU60 xsub train, 40,091 samples, is about 2 GB
    if they average 80 frames: arithmetic, not measured); forked DataLoader workers share it.
    Test mode (`test_mode=True`) cuts MMAction2's fixed-seed test clips, the same in every
    process; training draws from the generator `BatchLoader` hands in.
    """

    def __init__(
        self,
        path: str | Path,
        stream: str = "joint",
        *,
        clip_len: int = 100,
        num_clips: int = 1,
        test_mode: bool = False,
        window: int = 0,
        random_choose: int = 0,
        random_move: bool = False,
    ):
        if stream not in STREAMS:
            raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
        if clip_len < 1 or num_clips < 1:
            raise AgcnError(f"clip_len and num_clips must be at least 1, got {clip_len} and {num_clips}")
        self.path = Path(path)
        self.attrs = check_split_file(self.path)
        self.stream, self.clip_len, self.num_clips, self.test_mode = stream, int(clip_len), int(num_clips), test_mode
        # the full window (0: uniform clips of clip_len) and 2s-AGCN's augmentation, training only
        self.window, self.random_choose, self.random_move = _check_window(window, random_choose, random_move, num_clips)
        self.layout = split_layout(self.attrs, self.path)
        self.padding = window_padding(self.attrs)
        # 2s-AGCN's motion differences the padded window: hold the joints, difference per batch
        self.motion_after_padding = bool(self.window) and motion_of_window(self.padding, stream)
        self.base = "joint" if self.motion_after_padding else stream  # the stream held in `frames`
        with h5py.File(self.path, "r") as f:
            self.offset = f["offset"][:].astype(np.int64)  # rows of sample i: offset[i] + range(num_frames[i])
            self.num_frames = f["num_frames"][:].astype(np.int64)
            self.labels = f["label"][:].astype(np.int64)
            self.names = list(f["name"].asstr()[:])
            self.source = self.base if self.base in f else "joint"  # the dataset read
            self.frames = self._load(f[self.source])  # (C, F, V, M)
            _check_finite(self.frames, self.offset, self.names, self.path)
            facts = read_window_pad(f, self.path) if self.window and self.padding == "2s-agcn" else None
        # the full window: `period` (N,) repeats person 0 (and every person of older files);
        # `person_periods` (N, M) and `centre` (F, 3) repeat each person with its own period
        self.person_periods = self.centre = None
        if facts is not None:
            self.person_periods = fit_persons(facts[0], axis=1)
            self.centre = facts[1] if self.base == "joint" and self.frames.shape[0] == 3 else None
            self.period = self.person_periods[:, 0]
        elif self.window:
            self.period = window_periods(self.frames, self.offset, self.num_frames, self.padding)
        else:
            self.period = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def derive(self) -> bool:
        """Whether the stream is not stored and was derived from `joint` at load time (False for
        the motion of the padded window, derived from `joint` per batch, `motion_of_window`)."""
        return self.base != self.source

    def _load(self, data: h5py.Dataset) -> np.ndarray:
        """The whole stream as (C, F, V, M), read (and derived, if needed) block by block."""
        c, v = len(self.layout.channels), self.layout.num_joints
        out = np.empty((c, int(self.num_frames.sum()), v, NUM_PERSONS), dtype=np.float32)
        for a, b, r0, r1, block in read_blocks(data, self.offset, self.num_frames, str(self.path)):
            block = fit_persons(block, axis=1)  # (F, M, V, C)
            if self.derive:
                block = compute_stream_frames(block, self.base, self.layout, self.num_frames[a:b])
            out[:, r0:r1] = block.transpose(3, 0, 2, 1)  # (C, F, V, M)
        return out

    def batch_frame_indices(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, num_clips, clip_len) frame indices for samples `indices`, vectorised in training."""
        if self.window:
            return self._window_indices(np.asarray(indices, dtype=np.int64), rng)[:, None]  # (N, 1, L)
        lengths = self.num_frames[indices]
        if self.test_mode:
            return np.stack([_test_indices(int(t), self.clip_len, self.num_clips) for t in lengths])
        return np.stack([sample_batch_indices(lengths, self.clip_len, rng) for _ in range(self.num_clips)], axis=1)

    def clips(self, indices: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """The batch's views (N, K, C, L, V, M) of samples `indices`, before augmentation: frame
        indices, gather and, in the full window of 2s-agcn files, each person's own padding and
        the motion of the padded window."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.window:
            return self.gather(indices, self.batch_frame_indices(indices, rng))
        pos = self._window_positions(indices, rng)  # (N, L)
        if not self.motion_after_padding:
            return self._padded(indices, pos)
        # the run's joints and the window frame after it (the last frame again at the window's end)
        after = np.minimum(pos[:, -1:] + 1, self.window - 1)  # (N, 1)
        joints = self._padded(indices, np.concatenate([pos, after], axis=1)).numpy()[:, 0]  # (N, C, L + 1, V, M)
        stop = self.window - pos[:, 0]  # (N,) frames of the run inside the window
        out = window_motion(joints, self.stream, self.layout, stop)[:, :, :-1]  # (N, C, L, V, M)
        return torch.from_numpy(np.ascontiguousarray(out[:, None]))  # (N, 1, C, L, V, M)

    def _padded(self, indices: np.ndarray, pos: np.ndarray) -> torch.Tensor:
        """(N, 1, C, L, V, M) window frames at positions `pos` (N, L) of the `frames` stream,
        each person of a 2s-agcn file with its own period."""
        x = self.gather(indices, self._window_rows(indices, pos)[:, None])
        if self.person_periods is not None:
            repeat_persons(
                x.numpy()[:, 0], self.frames, self.centre, self.offset[indices], self.num_frames[indices],
                self.person_periods[indices], pos,
            )  # fmt: skip
        return x

    def _window_indices(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, L) frame indices of the full window (L = window), or of a random run of it (L =
        random_choose, training), repeating person 0; -1 marks a zero frame."""
        return self._window_rows(indices, self._window_positions(indices, rng))

    def _window_positions(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, L) positions in the window: all of it, or a random run of it (training); always
        consecutive (`clips` relies on it for the motion of the padded window)."""
        n = len(indices)
        if self.random_choose and not self.test_mode:
            starts = draw_choose(rng, n, self.window, self.random_choose)  # (N,)
            return starts[:, None] + np.arange(self.random_choose)  # (N, L)
        return np.broadcast_to(np.arange(self.window), (n, self.window))

    def _window_rows(self, indices: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """(N, L) frame indices of window positions `pos`, repeating person 0; -1: a zero frame."""
        length = self.num_frames[indices][:, None]  # (N, 1)
        period = self.period[indices][:, None]  # (N, 1); 0: zero padding
        padded = np.where(period > 0, pos % np.maximum(period, 1), -1)
        return np.where(pos < length, pos, padded)

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """2s-AGCN's `random_move` on a training batch (N, K, C, L, V, M), after `random_choose`'s
        draws from the same generator; anything else is returned as is."""
        if not self.random_move or self.test_mode:
            return x
        N, K = x.shape[:2]
        flat = x.numpy().reshape(N * K, *x.shape[2:])  # (N*K, C, L, V, M)
        moved = random_move(flat, draw_move(rng, N * K, flat.shape[2]))
        return torch.from_numpy(moved.reshape(x.shape))

    def gather(self, indices: np.ndarray, frame_idx: np.ndarray) -> torch.Tensor:
        """Clips of samples `indices` (N,) at `frame_idx` (N, L) or (N, K, L); index -1: a zero frame.

        Returns (N, C, L, V, M) or (N, K, C, L, V, M) float32, a new tensor.
        """
        frame_idx = np.asarray(frame_idx, dtype=np.int64)
        starts = self.offset[np.asarray(indices, dtype=np.int64)]
        zero = frame_idx < 0  # (N, [K,] L): padding past the real frames
        rows = starts.reshape(-1, *[1] * (frame_idx.ndim - 1)) + np.maximum(frame_idx, 0)  # (N, [K,] L)
        c, _, v, m = self.frames.shape
        out = np.empty((*rows.shape[:-1], c, rows.shape[-1], v, m), dtype=np.float32)  # (N, [K,] C, L, V, M)
        # One take per channel, straight into place, no thread pool competing with the model's;
        # a batch takes ~2 ms (BENCHMARKS.md, "Data pipeline").
        for ch in range(c):
            np.take(self.frames[ch], rows, axis=0, out=out[..., ch, :, :, :])
        if zero.any():
            *lead, frame = np.nonzero(zero)
            out[(*lead, slice(None), frame)] = 0
        return torch.from_numpy(out)


def _check_finite(frames: np.ndarray, offset: np.ndarray, names: list[str], path: Path) -> None:
    """NaN or inf frames would train on garbage (or stop at a non-finite loss): name the first sample."""
    # (F,): a NaN or inf makes its frame's float64 sum non-finite (finite float32 values cannot overflow it);
    # no full-size boolean copy of the stream
    bad = ~np.isfinite(frames.sum(axis=(0, 2, 3), dtype=np.float64))
    if bad.any():
        sample = int(np.searchsorted(offset, int(np.argmax(bad)), side="right")) - 1
        raise AgcnError(f"{path}: sample {names[sample]!r} holds NaN or infinite values; re-create the split file")


def _check_window(window: int, random_choose: int, random_move: bool, num_clips: int) -> tuple[int, int, bool]:
    if window < 0 or random_choose < 0 or random_choose > max(window, 0):
        raise AgcnError(f"window must be non-negative and random_choose within it, got {window} and {random_choose}")
    if window and num_clips != 1:
        raise AgcnError(f"the full window is one view of each sample: num_clips must be 1, got {num_clips}")
    if (random_choose or random_move) and not window:
        raise AgcnError("random_choose and random_move apply to the full window (window > 0)")
    return int(window), int(random_choose), bool(random_move)


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
    window gathered with person 0's period (`window_periods`) at positions `pos` (N, L).

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


# ---- loaders ----------------------------------------------------------------------------------


def worker_context(num_workers: int) -> str | None:
    """DataLoader workers are forked on Linux, whatever Python's default start method (forkserver
    from 3.14): forked workers share an in-memory split (gigabytes for NTU60 xsub), where others
    would be sent a pickled copy of it at every epoch's start."""
    return "fork" if num_workers > 0 and sys.platform == "linux" else None


class _EpochBatches(Dataset):
    """Batch b of one epoch: a map-style dataset of whole batches, for DataLoader workers."""

    def __init__(self, dataset: SkeletonDataset, batches: list[np.ndarray], key: tuple[int, ...]):
        self.dataset, self.batches, self.key = dataset, batches, key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ds, indices = self.dataset, self.batches[b]
        rng = np.random.default_rng([*self.key, b])  # per batch: independent of workers and order
        x = ds.augment(ds.clips(indices, rng), rng)  # (N, K, C, L, V, M)
        if ds.num_clips == 1:
            x = x[:, 0]  # (N, C, L, V, M)
        return x, torch.from_numpy(ds.labels[indices]), torch.from_numpy(indices)


class BatchLoader:
    """Whole batches gathered from a `SkeletonDataset`.

    `for x, y, idx in loader:` with x (N, C, L, V, M) (or (N, K, C, L, V, M) for K > 1 clips).
    Order: a permutation seeded by (seed, epoch) when shuffling, the same on every rank, then
    sharded as a `DistributedSampler` does (padded by wrapping around unless `drop_last`, then
    every `world_size`-th sample from `rank`). Frame sampling in training draws from a
    generator seeded by (seed, epoch, rank, batch number), so batches do not depend on the
    number of workers. Each iteration uses the current epoch and then advances it;
    `set_epoch` sets it (as for resuming).

    With `num_workers=0` (the fastest: worker processes pay for shared-memory copies of each
    batch) a background thread prepares `prefetch` batches ahead while the training step runs;
    the default is 2 with CUDA and 0 (gather in the loop) without, where the thread would only
    compete with the model for the same cores. With workers, a DataLoader over whole batches.
    """

    def __init__(
        self,
        dataset: SkeletonDataset,
        batch_size: int,
        *,
        shuffle: bool | None = None,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch: int | None = None,
    ):
        if batch_size < 1:
            raise AgcnError(f"batch size must be at least 1, got {batch_size}")
        if seed < 0:
            raise AgcnError(f"seed must be a non-negative integer, got {seed}")
        if not 0 <= rank < world_size:
            raise AgcnError(f"rank {rank} is outside 0..{world_size - 1} (world size {world_size})")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle = not dataset.test_mode if shuffle is None else shuffle
        self.drop_last, self.seed, self.rank, self.world_size = drop_last, seed, rank, world_size
        self.num_workers, self.pin_memory = num_workers, pin_memory and torch.cuda.is_available()
        self.prefetch = (2 if torch.cuda.is_available() else 0) if prefetch is None else prefetch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's sample indices of `epoch` (default: the current one), batch by batch."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.world_size > 1:
            order = np.resize(order, self._per_rank() * self.world_size)[self.rank :: self.world_size]
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def _per_rank(self) -> int:
        """Samples per rank: the split padded by wrapping around, or cut with `drop_last`."""
        n, ws = len(self.dataset), self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def __len__(self) -> int:
        per_rank = self._per_rank()
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        view = _EpochBatches(self.dataset, self.batches(epoch), (self.seed, epoch, self.rank))
        if self.num_workers > 0:
            return iter(
                DataLoader(
                    view,
                    batch_size=None,
                    num_workers=self.num_workers,
                    pin_memory=self.pin_memory,
                    multiprocessing_context=worker_context(self.num_workers),
                )
            )
        batches = (view[b] for b in range(len(view)))
        if self.pin_memory:
            batches = (tuple(t.pin_memory() for t in batch) for batch in batches)
        return _background(batches, self.prefetch) if self.prefetch > 0 else batches


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _background(items: Iterator, depth: int) -> Iterator:
    """Iterate `items` in a thread, up to `depth` ahead; the thread stops when the consumer does.

    numpy's take releases the GIL while it copies, so batches get ready while the training
    step runs, without the copies through shared memory that worker processes need.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put(_Raised(e))
            return
        put(done)

    threading.Thread(target=produce, name="agcn-batches", daemon=True).start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
