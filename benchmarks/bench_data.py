"""Training data throughput: samples/s from split file to batch (sampling + stream + collation).

    python benchmarks/bench_data.py [--samples 2000] [--batch-size 128] [--clip-len 100] [--json]

1. Writes a split file of `--samples` samples of 60-150 frames, 2 persons, 25 joints (random
   walks around a random pose, written directly with io.splitfile.SplitWriter) into
   bench_out/data/split.h5, and a copy with bone, joint-motion and bone-motion materialised
   (`agcn streams`, timed).
2. For each stream, read from the materialised dataset and derived on the fly from `joint`,
   measures samples/s of the data path (BatchLoader: in the main process, with its prefetch
   thread, and with 2 workers), in training mode with shuffling. (The per-sample DataLoader
   paths measured before 2026-11-30 were removed with the restructure: no command used them.)
   The rate is the best epoch's, timed from its first batch to its end (worker start-up
   excluded), over at least 3 epochs and `--seconds`.
   "load s" is the time to build the in-memory dataset (deriving the stream if needed).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.engine.data import BatchLoader, SkeletonDataset  # noqa: E402
from agcn_cli.io.splitwrite import SampleMeta, SplitWriter  # noqa: E402
from agcn_cli.io.streamfile import materialize_streams  # noqa: E402
from agcn_cli.skeleton.sampling import sample_batch_indices  # noqa: E402
from agcn_cli.skeleton.streams import DERIVED_STREAMS, STREAMS  # noqa: E402

PATHS = ("batch/w0", "batch/thread", "batch/w2")


def write_split(path: Path, samples: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    attrs = {"layout": "ntu25", "channels": "x,y,z", "recipe": "mmaction2", "normalized": True,
             "num_classes": 60, "split": "train", "benchmark": "ntu60-xsub", "source": "bench"}  # fmt: skip
    with SplitWriter(path, attrs, num_persons=2, num_joints=25, num_channels=3) as w:
        for i in range(samples):
            t = int(rng.integers(60, 151))
            pose = rng.normal(scale=0.3, size=(2, 1, 25, 3))
            walk = np.cumsum(rng.normal(scale=0.01, size=(2, t, 25, 3)), axis=1)
            sample = (pose + walk).astype(np.float32)
            if i % 2:  # half the samples have one person, as in NTU
                sample[1] = 0
            w.append(sample, SampleMeta(f"S001C001P{i % 40 + 1:03d}R001A{i % 60 + 1:03d}", i % 60), 2 - i % 2)


def measure(make_iter, seconds: float, step_s: float = 0.0, min_epochs: int = 3) -> float:
    """Best samples/s of an epoch, timed from its first batch to its end (worker start-up
    excluded), over at least `min_epochs` epochs and `seconds`. The best epoch, as timeit's
    minimum, estimates the pipeline's own speed on a machine shared with other processes.

    `step_s`: a stand-in for a GPU training step after each batch (sleeping, so the GIL is free).
    """
    rates, spent = [], 0.0
    while spent < seconds or len(rates) < min_epochs:
        it = iter(make_iter())
        next(it)
        done, t0 = 0, time.perf_counter()
        for x, _, _ in it:
            done += x.shape[0]
            if step_s:
                time.sleep(step_s)
        elapsed = time.perf_counter() - t0
        spent += elapsed
        rates.append(done / elapsed)
    return max(rates)


def gather_ms(ds: SkeletonDataset, batch: int, repeats: int = 50) -> dict[str, float]:
    """Median ms to gather one training batch: SkeletonDataset.gather (one np.take per channel)
    against torch's index_select over the same rows, with torch's current thread count."""
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(ds.frames)  # (C, F, V, M), shared memory

    def numpy_take(indices, idx):
        return ds.gather(indices, idx)

    def torch_index_select(indices, idx):
        rows = torch.from_numpy(ds.offset[indices][:, None] + idx).reshape(-1)
        x = frames.index_select(1, rows)  # (C, N*L, V, M)
        return x.view(x.shape[0], len(indices), -1, *x.shape[2:]).transpose(0, 1)  # (N, C, L, V, M)

    out = {}
    for name, fn in (("np.take", numpy_take), ("index_select", torch_index_select)):
        times = []
        for _ in range(repeats):
            indices = rng.choice(len(ds), batch, replace=False)
            idx = sample_batch_indices(ds.num_frames[indices], ds.clip_len, rng)
            t0 = time.perf_counter()
            fn(indices, idx)
            times.append(time.perf_counter() - t0)
        out[name] = round(1000 * float(np.median(times)), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--clip-len", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=2.0, help="measured time per configuration")
    ap.add_argument("--step-ms", type=float, default=0.0, help="simulated training step per batch (GIL free)")
    ap.add_argument("--streams", nargs="+", default=list(STREAMS), choices=STREAMS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "data")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    plain, mat = args.out / "split.h5", args.out / "split_streams.h5"
    t0 = time.perf_counter()
    write_split(plain, args.samples)
    write_s = time.perf_counter() - t0
    shutil.copyfile(plain, mat)
    report = materialize_streams(mat, list(DERIVED_STREAMS))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.2f} at start",
        "samples": args.samples,
        "frames": report["frames"],
        "batch_size": args.batch_size,
        "clip_len": args.clip_len,
        "step_ms": args.step_ms,
        "write_s": round(write_s, 2),
        "materialize_s": report["seconds"],
        "file_mb": {
            "joint only": round(plain.stat().st_size / 2**20, 1),
            "4 streams": round(mat.stat().st_size / 2**20, 1),
        },
        "rows": [],
    }
    bs, seconds, step = args.batch_size, args.seconds, args.step_ms / 1000
    results["gather_ms"] = gather_ms(SkeletonDataset(mat, "joint", clip_len=args.clip_len), bs)
    for stream in args.streams:
        for source, path in (("materialised", mat), ("on the fly", plain)):
            if stream == "joint" and source == "on the fly":
                continue  # joint is always read as stored
            t0 = time.perf_counter()
            mem = SkeletonDataset(path, stream, clip_len=args.clip_len)
            load_s = time.perf_counter() - t0
            loaders = {
                "batch/w0": partial(BatchLoader, mem, bs, drop_last=True, prefetch=0),
                "batch/thread": partial(BatchLoader, mem, bs, drop_last=True, prefetch=2),
                "batch/w2": partial(BatchLoader, mem, bs, drop_last=True, num_workers=2),
            }
            rates = {name: measure(make, seconds, step) for name, make in loaders.items()}
            results["rows"].append(
                {"stream": stream, "source": source, "load_s": round(load_s, 2)}
                | {k: round(v) for k, v in rates.items()}
            )
            print(f"done: {stream} {source}", file=sys.stderr)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"machine: {results['machine']}; {args.samples} samples, {results['frames']} frames, batch {bs}, "
        f"clip_len {args.clip_len}, simulated step {args.step_ms} ms; write {results['write_s']} s, "
        f"materialise 3 streams {results['materialize_s']} s; file {results['file_mb']['joint only']} MiB (joint), "
        f"{results['file_mb']['4 streams']} MiB (4 streams)"
    )
    g = results["gather_ms"]
    print(f"gather one batch of {bs} x {args.clip_len} (median ms): np.take per channel {g['np.take']}, "
          f"torch index_select {g['index_select']} ({torch.get_num_threads()} torch threads)")  # fmt: skip
    print("\nsamples/s (training mode; w = DataLoader workers over whole batches; thread = prefetch thread)\n")
    print("| stream | source | load s | " + " | ".join(PATHS) + " |")
    print("|---|---|---|" + "---|" * len(PATHS))
    for r in results["rows"]:
        print(f"| {r['stream']} | {r['source']} | {r['load_s']} | " + " | ".join(f"{r[p]:,}" for p in PATHS) + " |")


if __name__ == "__main__":
    main()
