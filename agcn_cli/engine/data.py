"""The data pipeline of training and evaluation: a split file in, clips `(N, C, T, V, M)` out.

Two ways to read the same clips:

- `SkeletonDataset`: map-style, one sample per `__getitem__`, for a torch `DataLoader` (any
  number of workers, `pin_memory`, a `DistributedSampler`); `make_loader` builds one.
- `BatchLoader`: the fast training path. It draws a whole batch of frame indices at once
  (`sampling.sample_batch_indices`) and gathers the frames with one `np.take` per channel from
  the stream held in memory; it shuffles and shards by (seed, epoch, rank, world_size) itself.

Both give `for x, y, idx in loader:` with x float32 `(N, C, clip_len, V, M)`, or
`(N, num_clips, C, clip_len, V, M)` when `num_clips > 1`, y the labels and idx the sample
indices (int64), so scores can be written by sample name.

Streams: a stream materialised in the file (`agcn streams`) is read as stored; otherwise it is
derived from `joint` with the same `streams.compute_stream` on each sample's full real frames
before sampling, as MMAction2's GenSkeFeat does, so both give identical tensors. In memory the
derivation runs once at load time (`streams.compute_stream_frames`, exactly what `agcn streams`
stores); motion needs whole sequences, so deriving it after sampling would be wrong.

Persons: as MMAction2's `FormatGCNInput(num_person=2)`, extra persons are dropped and missing
ones zero-padded. A file with `normalized=False` gets `pre_normalize_3d` (3D layouts) or
`pre_normalize_2d` (2D layouts, image size from a per-sample `img_shape` dataset if present)
per sample at load time, before streams are derived (materialised streams are ignored then).
"""

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..io.splitfile import check_split_file, sample_blocks
from ..models.agcn import ModelConfig
from ..skeleton.layouts import get_layout
from ..skeleton.normalize import DEFAULT_IMG_SHAPE, pre_normalize_2d, pre_normalize_3d
from ..skeleton.persons import NUM_PERSONS, fit_persons
from ..skeleton.sampling import TEST_SEED, sample_batch_indices, uniform_sample_indices
from ..skeleton.streams import STREAMS, compute_stream, compute_stream_frames
from .config import TrainConfig
from .distributed import Dist


@cache
def _test_indices(num_frames: int, clip_len: int, num_clips: int) -> np.ndarray:
    """Test clips depend on the length alone (fixed seed): computed once per length."""
    idx = uniform_sample_indices(num_frames, clip_len, num_clips=num_clips, test_mode=True, seed=TEST_SEED)
    idx.flags.writeable = False
    return idx


class SkeletonDataset(Dataset):
    """One stream of a split file as clips; `ds[i]` is `(x, label, i)`.

    x is float32 `(C, clip_len, V, M)` when `num_clips == 1`, else `(num_clips, C, clip_len,
    V, M)` (the test clips of one sample), with M = 2.

    Training mode (`test_mode=False`) draws frames from an explicit `np.random.Generator` per
    process: seeded by `seed` (or `torch.initial_seed()`) in the main process, and by torch's
    per-worker seed (plus `seed`) in a DataLoader worker, so each worker and each epoch draws
    differently and a seeded DataLoader generator makes runs reproducible. Test mode uses
    MMAction2's fixed-seed test clips, the same in every process.

    `in_memory=True` loads the whole stream once at construction into `frames`, a (C, F, V, M)
    float32 array of all samples' frames, 600 bytes a frame (NTU60 xsub train, 40,091 samples:
    about 2 GB if they average 80 frames; arithmetic, not measured here); forked DataLoader
    workers share it. Otherwise each process opens the file on first use and reads one sample
    per item.
    """

    def __init__(
        self,
        path: str | Path,
        stream: str = "joint",
        *,
        clip_len: int = 100,
        num_clips: int = 1,
        test_mode: bool = False,
        in_memory: bool = False,
        seed: int | None = None,
    ):
        if stream not in STREAMS:
            raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
        if clip_len < 1 or num_clips < 1:
            raise AgcnError(f"clip_len and num_clips must be at least 1, got {clip_len} and {num_clips}")
        if seed is not None and seed < 0:
            raise AgcnError(f"seed must be a non-negative integer, got {seed}")
        self.path = Path(path)
        self.attrs = check_split_file(self.path)
        self.stream, self.clip_len, self.num_clips = stream, int(clip_len), int(num_clips)
        self.test_mode, self.seed = test_mode, seed
        self.layout = get_layout(self.attrs["layout"])
        self.normalized = bool(self.attrs["normalized"])
        with h5py.File(self.path, "r") as f:
            self.offset = f["offset"][:].astype(np.int64)  # rows of sample i: offset[i] + range(num_frames[i])
            self.num_frames = f["num_frames"][:].astype(np.int64)  # after normalisation when in memory
            self.labels = f["label"][:].astype(np.int64)
            self.names = list(f["name"].asstr()[:])
            self.img_shape = f["img_shape"][:] if "img_shape" in f else None
            materialized = self.normalized and stream in f
        # `source`: the dataset read; `derive`: whether compute_stream runs on it
        self.source = stream if materialized else "joint"
        self.derive = stream != self.source
        self.frames: np.ndarray | None = None  # (C, F, V, M) when in memory
        self._h5_file: h5py.File | None = None
        self._h5: h5py.Dataset | None = None  # the source dataset, opened in this process
        self._h5_pid = -1
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None
        if in_memory:
            self._load()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        i = int(i)
        if self.frames is None:
            seq = self.sequence(i)  # (C, T, V, M)
            idx = self.frame_indices(seq.shape[1])  # (K, L)
            x = torch.from_numpy(np.ascontiguousarray(seq[:, idx].swapaxes(0, 1)))  # (K, C, L, V, M)
        else:
            idx = self.frame_indices(int(self.num_frames[i]))
            x = self.gather(np.array([i]), idx[None])[0]  # (K, C, L, V, M)
        return (x[0] if self.num_clips == 1 else x), int(self.labels[i]), i

    # ---- sampling ---------------------------------------------------------------------------

    def rng(self) -> np.random.Generator:
        """This process's training generator (a new one in each DataLoader worker)."""
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.seed)
        if self._rng is None or self._rng_key != key:
            if info is None:  # the main process
                entropy = [torch.initial_seed() if self.seed is None else self.seed]
            else:  # torch's worker seed differs per worker and per epoch (non-persistent workers)
                entropy = [info.seed] + ([] if self.seed is None else [self.seed])
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng

    def frame_indices(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """(num_clips, clip_len) frame indices for a sequence of `num_frames` frames."""
        if self.test_mode:
            return _test_indices(int(num_frames), self.clip_len, self.num_clips)
        rng = self.rng() if rng is None else rng
        return uniform_sample_indices(num_frames, self.clip_len, num_clips=self.num_clips, rng=rng)

    def batch_frame_indices(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, num_clips, clip_len) frame indices for samples `indices`, vectorised in training."""
        lengths = self.num_frames[indices]
        if self.test_mode:
            return np.stack([_test_indices(int(t), self.clip_len, self.num_clips) for t in lengths])
        return np.stack([sample_batch_indices(lengths, self.clip_len, rng) for _ in range(self.num_clips)], axis=1)

    # ---- reading ----------------------------------------------------------------------------

    def sequence(self, i: int) -> np.ndarray:
        """Sample i's full stream (C, T, V, M) float32: real frames, persons fitted to 2."""
        if self.frames is not None:
            start, t = int(self.offset[i]), int(self.num_frames[i])
            return self.frames[:, start : start + t].copy()
        return self._read_sequence(self._data(), i)

    def gather(self, indices: np.ndarray, frame_idx: np.ndarray) -> torch.Tensor:
        """Clips of samples `indices` (N,) at `frame_idx` (N, L) or (N, K, L), from memory.

        Returns (N, C, L, V, M) or (N, K, C, L, V, M) float32, a new tensor.
        """
        if self.frames is None:
            raise AgcnError("batched gathering needs the stream in memory: SkeletonDataset(..., in_memory=True)")
        frame_idx = np.asarray(frame_idx, dtype=np.int64)
        starts = self.offset[np.asarray(indices, dtype=np.int64)]
        rows = starts.reshape(-1, *[1] * (frame_idx.ndim - 1)) + frame_idx  # (N, [K,] L)
        c, _, v, m = self.frames.shape
        out = np.empty((*rows.shape[:-1], c, rows.shape[-1], v, m), dtype=np.float32)  # (N, [K,] C, L, V, M)
        # One take per channel, straight into place. Single-threaded on purpose: a 128 x 100
        # batch takes ~2 ms whatever the load, where torch's index_select with its thread pool
        # was twice as fast on an idle machine but fell to ~16 ms per batch at times on a busy one.
        for ch in range(c):
            np.take(self.frames[ch], rows, axis=0, out=out[..., ch, :, :, :])
        return torch.from_numpy(out)

    def _data(self) -> h5py.Dataset:
        # h5py handles must not cross a fork: open on first use in each process
        if self._h5 is None or self._h5_pid != os.getpid():
            self._h5_file = h5py.File(self.path, "r")
            self._h5 = self._h5_file[self.source]
            self._h5_pid = os.getpid()
        return self._h5

    def _read_sequence(self, data: h5py.Dataset, i: int) -> np.ndarray:
        start, t = int(self.offset[i]), int(self.num_frames[i])
        frames = fit_persons(data[start : start + t], axis=1)  # (T, M, V, C)
        if not self.normalized:
            frames = self._normalize(frames, i)
        x = frames.transpose(3, 0, 2, 1)  # (C, T, V, M)
        if self.derive:
            x = compute_stream(x, self.stream, self.layout)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _normalize(self, frames: np.ndarray, i: int) -> np.ndarray:
        """The load-time pre-normalisation of one (T, M, V, C) sample; T may shrink (3D)."""
        kp = frames.transpose(1, 0, 2, 3)  # (M, T, V, C)
        if "z" in self.layout.channels:
            kp = pre_normalize_3d(kp, **(self.layout.normalize or {}), dtype=np.float32)
        else:
            shape = DEFAULT_IMG_SHAPE if self.img_shape is None else tuple(int(s) for s in self.img_shape[i])
            kp = pre_normalize_2d(kp, shape)
        return kp.transpose(1, 0, 2, 3)

    def _load(self) -> None:
        """Hold the whole stream in memory as (C, F, V, M), derived block by block if needed."""
        c, v = len(self.layout.channels), self.layout.num_joints
        with h5py.File(self.path, "r") as f:
            if not self.normalized:  # lengths change: normalise and derive sample by sample
                seqs = [self._read_sequence(f[self.source], i) for i in range(len(self))]  # (C, T', V, M)
                self.num_frames = np.array([s.shape[1] for s in seqs], dtype=np.int64)
                self.offset = np.cumsum(self.num_frames) - self.num_frames
                self.frames = np.concatenate(seqs, axis=1) if seqs else np.empty((c, 0, v, NUM_PERSONS), np.float32)
                return
            data = f[self.source]
            out = np.empty((c, int(self.num_frames.sum()), v, NUM_PERSONS), dtype=np.float32)
            for a, b in sample_blocks(self.offset, self.num_frames, source=str(self.path)):
                r0, r1 = int(self.offset[a]), int(self.offset[b - 1] + self.num_frames[b - 1])
                block = fit_persons(data[r0:r1], axis=1)  # (F, M, V, C)
                if self.derive:
                    block = compute_stream_frames(block, self.stream, self.layout, self.num_frames[a:b])
                out[:, r0:r1] = block.transpose(3, 0, 2, 1)  # (C, F, V, M)
            self.frames = out

    def __getstate__(self) -> dict:
        # a pickled copy (spawned workers) reopens the file and reseeds in its own process
        state = self.__dict__.copy()
        state.update(_h5_file=None, _h5=None, _h5_pid=-1, _rng=None, _rng_key=None)
        return state


# ---- loaders ----------------------------------------------------------------------------------


def worker_context(num_workers: int) -> str | None:
    """DataLoader workers are forked on Linux, whatever Python's default start method (forkserver
    from 3.14): forked workers share an in-memory split (gigabytes for NTU60 xsub), where others
    would be sent a pickled copy of it at every epoch's start."""
    return "fork" if num_workers > 0 and sys.platform == "linux" else None


def make_loader(
    dataset: SkeletonDataset,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A per-sample DataLoader; shuffles in training mode unless told.

    Seeded (order and worker seeds) by `seed`. With `world_size > 1` it shards with a
    `DistributedSampler`: call `loader.sampler.set_epoch(epoch)` each epoch.
    """
    shuffle = not dataset.test_mode if shuffle is None else shuffle
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        multiprocessing_context=worker_context(num_workers),
    )


class _EpochBatches(Dataset):
    """Batch b of one epoch: a map-style dataset of whole batches, for DataLoader workers."""

    def __init__(self, dataset: SkeletonDataset, batches: list[np.ndarray], key: tuple[int, ...]):
        self.dataset, self.batches, self.key = dataset, batches, key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ds, indices = self.dataset, self.batches[b]
        rng = np.random.default_rng([*self.key, b])  # per batch: independent of workers and order
        x = ds.gather(indices, ds.batch_frame_indices(indices, rng))  # (N, K, C, L, V, M)
        if ds.num_clips == 1:
            x = x[:, 0]  # (N, C, L, V, M)
        return x, torch.from_numpy(ds.labels[indices]), torch.from_numpy(indices)


class BatchLoader:
    """The fast path: whole batches gathered from an in-memory `SkeletonDataset`.

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
        if dataset.frames is None:
            raise AgcnError("BatchLoader needs the stream in memory: SkeletonDataset(..., in_memory=True)")
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


def resolve_splits(config: "TrainConfig") -> tuple[Path, Path | None]:
    data = Path(config.data)
    train = data / "train.h5" if data.is_dir() else data
    if data.is_dir() and not train.is_file():
        raise AgcnError(f"{data}: no train.h5 in this folder. Run: agcn preprocess RAW_DIR {data}")
    if config.val is not None:
        return train, Path(config.val)
    test = data / "test.h5"
    return train, test if data.is_dir() and test.is_file() else None


def load_split(path: Path, config: "TrainConfig", test_mode: bool, log: Callable[[str], None]) -> SkeletonDataset:
    """The split's stream in memory; derived from joint (with a log line) when not stored."""
    ds = SkeletonDataset(
        path, config.modality, clip_len=config.clip_len, test_mode=test_mode, in_memory=True, seed=config.seed
    )
    if len(ds) == 0:
        raise AgcnError(f"{path}: the split holds no samples; check agcn preprocess's report (agcn info {path})")
    if ds.derive:
        log(
            f"{path}: no stored {config.modality!r} stream, derived from joint at load time "
            f"(agcn streams {path} would store it)"
        )
    return ds


def build_data(
    config: "TrainConfig", ctx: Dist, log: Callable[[str], None]
) -> tuple[BatchLoader, BatchLoader | None, DataInfo, ModelConfig]:
    """(train loader, validation loader or None, DataInfo, ModelConfig) from the split files."""
    train_path, val_path = resolve_splits(config)
    splits = [load_split(train_path, config, False, log)]
    if val_path is not None:
        splits.append(load_split(val_path, config, True, log))
    attrs = splits[0].attrs
    num_classes = config.num_classes or int(attrs["num_classes"])
    for ds in splits:
        if (ds.attrs["layout"], ds.attrs["channels"]) != (attrs["layout"], attrs["channels"]):
            raise AgcnError(f"{ds.path}: layout/channels differ from those of the training data {train_path}")
        if int(ds.labels.max()) >= num_classes:
            raise AgcnError(
                f"{ds.path}: label {int(ds.labels.max())} does not fit {num_classes} classes (labels must be "
                f"0..{num_classes - 1}); raise --num-classes, or drop it to use the file's num_classes"
            )
    loader = BatchLoader(
        splits[0],
        config.batch_size // ctx.world_size,
        shuffle=True,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        num_workers=config.workers,
        pin_memory=config.pin_memory,
    )
    val_loader = None
    if len(splits) > 1:
        val_loader = BatchLoader(
            splits[1], config.val_batch_size, shuffle=False, rank=ctx.rank, world_size=ctx.world_size
        )
    data = DataInfo(
        modality=config.modality,
        layout=attrs["layout"],
        recipe=attrs["recipe"],
        benchmark=attrs.get("benchmark", ""),
        channels=attrs["channels"],
        clip_len=config.clip_len,
    )
    model_config = ModelConfig(
        layout=data.layout,
        num_classes=num_classes,
        in_channels=len(splits[0].layout.channels),
        num_persons=NUM_PERSONS,
        variant=config.variant,
        dropout=config.dropout,
    )
    return loader, val_loader, data, model_config
