"""The data path of training and evaluation: a split file in, batches of clips `(N, C, T, V, M)` out.

`SkeletonDataset` reads one stream of a split file. With uniform clips (MMAction2's recipe) it maps
the split's joints read-only from the joint cache (`io/jointcache`: one copy per machine, whatever
the streams and processes) and derives each batch's stream from the gathered joints
(`views.views_from_joints`, bit for bit the load-time derivation); with the full window, or with
`AGCN_JOINT_CACHE=off`, it holds the stream in its memory as a (C, F, V, M) float32 array of all
samples' frames. `BatchLoader` draws a whole batch at once and cuts its views with the one
clip path, `skeleton.views.cut_views` (MMAction2's uniform clips, fixed-seed in test mode, or
2s-AGCN's full window; one `np.take` per channel); it shuffles and shards by (seed, epoch, rank,
world_size) itself. `for x, y, idx in loader:` gives x float32 `(N, C, L, V, M)`, or
`(N, num_clips, C, L, V, M)` when `num_clips > 1` (L: clip_len, or in the full window its
`window` frames, `random_choose` of them in training), y the labels and idx the sample indices
(int64), so scores can be written by sample name.

Streams held in memory: a stream materialised in the file (`agcn streams`) is read as stored; otherwise it is
derived from `joint` at load time with `streams.compute_stream_frames` on each sample's full real
frames, exactly what `agcn streams` stores (MMAction2's GenSkeFeat runs before frame sampling,
so motion must be derived on whole sequences, never after sampling).

Persons: as MMAction2's `FormatGCNInput(num_person=2)`, extra persons are dropped and missing
ones zero-padded.

The full window (`window > 0`, 2s-AGCN's recipe, `--sampling full`): each sample is seen as the
reference's array padded to `window` frames (300), one view, no frame sampling, continued past
its real frames as its recipe's padding does (`skeleton/window.py`; data_specs/recipes.md,
"Training recipes"). In training, `random_choose` crops a random run and `random_move` moves x, y
(`skeleton.augment`, 2s-AGCN's Kinetics augmentation), drawn per batch from the batch's generator.
Motion in the window of 2s-AGCN NTU data is the motion of the padded window, as the reference's
`gen_motion_data` differences its padded arrays (`window.motion_of_window`): the joints are held,
padded per batch, and differenced there; a stored motion stream (of the real frames) is not read.
"""

import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import AgcnError
from ..io.jointcache import cache_enabled, shared_joints
from ..io.splitfile import (
    check_split_file,
    read_meta,
    read_stream_blocks,
    read_window_pad,
    refuse_nonfinite,
    split_layout,
    stored_streams,
)
from ..skeleton.augment import draw_move, random_move
from ..skeleton.persons import NUM_PERSONS, fit_persons
from ..skeleton.streams import STREAMS, compute_stream_frames
from ..skeleton.views import ViewSpec, clip_indices, cut_views, frame_indices, gather_frames, views_from_joints
from ..skeleton.window import pad_periods, window_padding


class SkeletonDataset:
    """One stream of a split file, in memory, and the views (`spec`) cut from it.

    `frames` is a (C, F, V, M) float32 array of all samples' frames of the stream (of `joint`
    where the full window's motion is that of the padded window, `window.motion_of_window`), loaded
    once at construction (600 bytes a frame for NTU-25; NTU60 xsub train, 40,091 samples, is about
    2 GB if they average 80 frames: arithmetic, not measured); forked DataLoader workers share it.
    Test mode (`test_mode=True`) cuts MMAction2's fixed-seed test clips, the same in every
    process; training draws from the generator `BatchLoader` hands in. `attrs`: the file's
    attributes where the caller has checked it (`check_split_file`; None: checked here).
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
        attrs: dict | None = None,
    ):
        if stream not in STREAMS:
            raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
        if clip_len < 1 or num_clips < 1:
            raise AgcnError(f"clip_len and num_clips must be at least 1, got {clip_len} and {num_clips}")
        self.path = Path(path)
        self.attrs = check_split_file(self.path) if attrs is None else attrs
        self.stream, self.clip_len, self.num_clips, self.test_mode = stream, int(clip_len), int(num_clips), test_mode
        # the full window (0: uniform clips of clip_len) and 2s-AGCN's augmentation, training only
        self.window, self.random_choose, self.random_move = _check_window(window, random_choose, random_move, num_clips)
        self.layout = split_layout(self.attrs, self.path)
        self.padding = window_padding(self.attrs)
        self.spec = ViewSpec(
            stream, clip_len=self.clip_len, num_clips=self.num_clips, window=self.window,
            random_choose=self.random_choose, padding=self.padding, layout=self.layout,
        )  # fmt: skip
        # 2s-AGCN's motion differences the padded window: hold the joints, difference per batch
        self.motion_after_padding = self.spec.padded_motion
        self.base = self.spec.base  # the stream held in `frames`
        meta = read_meta(self.path, ("offset", "num_frames", "label", "name"), check=False)
        self.offset = meta["offset"].astype(np.int64)  # rows of sample i: offset[i] + range(num_frames[i])
        self.num_frames = meta["num_frames"].astype(np.int64)
        self.labels = meta["label"].astype(np.int64)
        self.names = list(meta["name"])
        # uniform clips: the joints shared by every process and stream (io/jointcache), each view's
        # stream derived from them per batch; the full window: the stream in this process's memory
        self.shared = not self.window and cache_enabled()
        self.source = "joint" if self.shared else (self.base if self.base in stored_streams(self.path) else "joint")
        self.joints: np.ndarray | None = None  # (F, M, V, C) read-only memory map, when shared
        self._frames: np.ndarray | None = None  # (C, F, V, M), when not
        if self.shared:
            shape = (self.layout.num_joints, len(self.layout.channels))
            self.joints = shared_joints(self.path, self.offset, self.num_frames, self.names, shape)
        else:
            self._frames = self._load()
            _check_finite(self._frames, self.offset, self.names, self.path)
        self.pads = None  # the full window's padding: each person's own period (2s-agcn facts), or person 0's
        if self.window:
            facts = read_window_pad(self.path) if self.padding == "2s-agcn" else None
            self.pads = pad_periods(self.frames, self.offset, self.num_frames, self.padding, facts, self.base)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def frames(self) -> np.ndarray:
        """The stream of every sample, (C, F, V, M) float32. Shared joints: derived here into a
        private array of this process (for inspection; batches never need it)."""
        if self._frames is not None:
            return self._frames
        stream = compute_stream_frames(np.asarray(self.joints), self.stream, self.layout, self.num_frames)
        return np.ascontiguousarray(stream.transpose(3, 0, 2, 1))

    @property
    def derive(self) -> bool:
        """Whether the stream is not stored and was derived from `joint` at load time (False for
        the motion of the padded window, derived from `joint` per batch, `motion_of_window`)."""
        return self.base != self.source

    def _load(self) -> np.ndarray:
        """The whole stream as (C, F, V, M), read (and derived, if needed) block by block."""
        c, v = len(self.layout.channels), self.layout.num_joints
        out = np.empty((c, int(self.num_frames.sum()), v, NUM_PERSONS), dtype=np.float32)
        for a, b, r0, r1, block in read_stream_blocks(self.path, self.source, self.offset, self.num_frames):
            block = fit_persons(block, axis=1)  # (F, M, V, C)
            if self.derive:
                block = compute_stream_frames(block, self.base, self.layout, self.num_frames[a:b])
            out[:, r0:r1] = block.transpose(3, 0, 2, 1)  # (C, F, V, M)
        return out

    def batch_frame_indices(self, indices: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """(N, num_clips, clip_len) frame indices for samples `indices` (in the window, (N, 1,
        L) repeating person 0; -1: a zero frame), vectorised."""
        indices = np.asarray(indices, dtype=np.int64)
        pads = None if self.pads is None else self.pads.take(indices)
        return frame_indices(self.num_frames[indices], self.spec, pads, None if self.test_mode else rng)

    def clips(self, indices: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        """The batch's views (N, K, C, L, V, M) of samples `indices`, before augmentation
        (`skeleton.views.cut_views`): the test views in test mode, else drawn from `rng`."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.shared:
            return self.gather(indices, clip_indices(self.num_frames[indices], self.spec,
                                                     None if self.test_mode else rng))  # fmt: skip
        pads = None if self.pads is None else self.pads.take(indices)
        views = cut_views(
            self.frames, self.offset[indices], self.num_frames[indices], self.spec, pads,
            None if self.test_mode else rng,
        )  # fmt: skip
        return torch.from_numpy(views)

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

        Returns (N, C, L, V, M) or (N, K, C, L, V, M) float32, a new tensor (`views.gather_frames`).
        """
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.offset[indices]
        if self.shared:
            return torch.from_numpy(views_from_joints(self.joints, starts, self.num_frames[indices], frame_idx,
                                                      self.stream, self.layout))  # fmt: skip
        return torch.from_numpy(gather_frames(self.frames, starts, frame_idx))


def _check_finite(frames: np.ndarray, offset: np.ndarray, names: list[str], path: Path) -> None:
    """The stream in memory, (C, F, V, M): NaN or inf is one line naming the sample."""
    refuse_nonfinite(frames, 1, 0, offset, names, path)


def _check_window(window: int, random_choose: int, random_move: bool, num_clips: int) -> tuple[int, int, bool]:
    if window < 0 or random_choose < 0 or random_choose > max(window, 0):
        raise AgcnError(f"window must be non-negative and random_choose within it, got {window} and {random_choose}")
    if window and num_clips != 1:
        raise AgcnError(f"the full window is one view of each sample: num_clips must be 1, got {num_clips}")
    if (random_choose or random_move) and not window:
        raise AgcnError("random_choose and random_move apply to the full window (window > 0)")
    return int(window), int(random_choose), bool(random_move)


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
