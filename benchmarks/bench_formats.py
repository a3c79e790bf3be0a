"""Two format choices, measured: LZF against gzip for split files, and the restricted unpickler.

    python benchmarks/bench_formats.py [--split FILE] [--samples 20000] [--repeats 2]

1. The `joint` dataset of `--split` (an `agcn preprocess` output) rewritten with the schema's
   chunking and shuffle filter, LZF against gzip level 4: write and full-read seconds, size
   against raw (data_specs/hdf5.md).
2. An MMAction2-style annotation `.pkl` of `--samples` samples (2 persons x 80 frames x 25
   joints x 3, float16, pickle protocol 2 as mmcv writes) loaded by agcn's restricted
   unpickler against the C `pickle.load` (data_specs/imports.md).
"""

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agcn_cli.sources.safe_pickle import load_pickle  # noqa: E402

CODECS = {"lzf": {"compression": "lzf"}, "gzip 4": {"compression": "gzip", "compression_opts": 4}}


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compression(split: Path, tmp: Path, repeats: int) -> None:
    with h5py.File(split) as f:
        x = f["joint"][:]
    chunk = (256, *x.shape[1:])  # the schema's chunk: 256 frames over the full (M, V, C) extent
    print(f"{split}: {x.shape[0]:,} frames, {x.nbytes / 2**20:.1f} MiB raw")
    for name, kw in CODECS.items():
        path = tmp / "c.h5"

        def write(kw=kw, path=path):
            with h5py.File(path, "w") as g:
                g.create_dataset("joint", data=x, chunks=chunk, shuffle=True, **kw)

        def read(path=path):
            with h5py.File(path) as g:
                g["joint"][:]

        w = best(write, repeats)
        r = best(read, repeats)
        print(f"  {name:7s} write {w:.2f} s, read {r:.2f} s, {os.path.getsize(path) / x.nbytes:.0%} of raw")


def unpickler(samples: int, tmp: Path, repeats: int) -> None:
    rng = np.random.default_rng(0)
    ann = [{"frame_dir": f"S001C001P001R001A{i % 60 + 1:03d}_{i}", "label": i % 60, "total_frames": 80,
            "keypoint": rng.normal(size=(2, 80, 25, 3)).astype(np.float16)} for i in range(samples)]  # fmt: skip
    path = tmp / "ann.pkl"
    with open(path, "wb") as f:
        pickle.dump({"split": {"xsub_train": [a["frame_dir"] for a in ann]}, "annotations": ann}, f, protocol=2)

    def plain():
        with open(path, "rb") as f:
            pickle.load(f)

    print(f"{samples:,}-sample .pkl, {path.stat().st_size / 2**20:.0f} MiB:")
    restricted, c = best(lambda: load_pickle(path), repeats), best(plain, repeats)
    print(f"  restricted unpickler {restricted:.2f} s, C pickle {c:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", type=Path, help="a split file; default: the compression part is skipped")
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each measurement; the fastest is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.split:
            compression(args.split, Path(tmp), args.repeats)
        unpickler(args.samples, Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
