"""The 2s-AGCN recipe's data path on the CPU: milliseconds per training batch, by sampling.

    python benchmarks/bench_recipe_2sagcn.py [--samples 2000] [--repeats 50] [--json]

Writes three split files of `--samples` samples of 60-150 frames, 2 persons (half of them one),
into bench_out/recipe/: NTU-25 of the `2s-agcn` recipe with its window facts (`pad_period`,
`pad_centre`: each person repeated with its own period; a third of the second persons are short
bodies, of a third of the sample), the same without the facts (files written before them:
person 0's period for all) and OpenPose-18 marked as Kinetics-Skeleton (zero padding). Then
times, per batch (median of `--repeats`, in the main process, training mode), the frame
indices, the gather and the augmentation of:
- `uniform`: MMAction2's recipe, batch 128 of 100-frame clips (the default of `agcn train`);
- `ntu-full`: configs/2s-agcn-ntu.toml, batch 64 of the whole 300-frame window, each person
  with its own period (`skeleton/window.repeat_persons`);
- `ntu-full-no-facts`: the same on the file without the facts (person 0's period, as before);
- `kinetics`: configs/2s-agcn-kinetics.toml, batch 128, a random 150-frame run of the window
  (random_choose) and random_move; and its reference transcription (tests/reference/
  feeder_tools.py, per sample, as the original's feeder runs it) on the same padded samples.
"load s" is the time to build the in-memory dataset (with the full window's periods).
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.engine.data import BatchLoader, SkeletonDataset, _EpochBatches  # noqa: E402
from agcn_cli.io.splitfile import PAD_CENTRE, PAD_PERIOD  # noqa: E402
from agcn_cli.io.splitwrite import SampleMeta, SplitWriter  # noqa: E402
from tests.reference.feeder_tools import feeder_item  # noqa: E402


def write_split(
    path: Path, samples: int, layout: str, joints: int, channels: str, attrs: dict, facts: bool = False
) -> None:
    rng = np.random.default_rng(0)
    base = {"layout": layout, "channels": channels, "normalized": True, "num_classes": 60, "split": "train"}
    with SplitWriter(path, {**base, **attrs}, num_persons=2, num_joints=joints, num_channels=3) as w:
        for i in range(samples):
            t = int(rng.integers(60, 151))
            walk = np.cumsum(rng.normal(scale=0.01, size=(2, t, joints, 3)), axis=1)  # as bench_data.py
            sample = (rng.normal(scale=0.3, size=(2, 1, joints, 3)) + walk).astype(np.float32)
            periods = np.array([t, t], np.int32)
            if i % 2:
                sample[1], periods[1] = 0, 0
            elif i % 3 == 0:  # a short second body: its own period, a third of the sample
                periods[1] = t // 3
                sample[1, t // 3 :] = np.resize(sample[1, : t // 3], sample[1, t // 3 :].shape)
            meta = SampleMeta(f"S001C001P001R001A{i % 60 + 1:03d}", i % 60)
            if facts:
                centre = rng.normal(scale=0.1, size=(t, 3)).astype(np.float32)
                w.append(sample, meta, 2 - i % 2, {PAD_PERIOD: periods}, {PAD_CENTRE: centre})
            else:
                w.append(sample, meta, 2 - i % 2)


def time_batches(ds: SkeletonDataset, batch: int, repeats: int) -> float:
    """Median ms of one training batch (indices, gather, augmentation) over `repeats` batches."""
    loader = BatchLoader(ds, batch, seed=0, prefetch=0)
    view = _EpochBatches(ds, loader.batches(0), (0, 0, 0))
    times = []
    for b in range(repeats):
        t0 = time.perf_counter()
        view[b % len(view)]
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = ROOT / "bench_out" / "recipe"
    out.mkdir(parents=True, exist_ok=True)
    ntu, old, kin = out / "ntu_2sagcn.h5", out / "ntu_2sagcn_no_facts.h5", out / "kinetics.h5"
    ntu_attrs = {"recipe": "2s-agcn", "source": "ntu-skeleton"}
    write_split(ntu, args.samples, "ntu25", 25, "x,y,z", ntu_attrs, facts=True)
    write_split(old, args.samples, "ntu25", 25, "x,y,z", ntu_attrs)
    write_split(kin, args.samples, "openpose18", 18, "x,y,score", {"recipe": "2s-agcn", "source": "kinetics-skeleton"})
    rows = {}
    for name, path, kw, batch in (
        ("uniform", ntu, {"clip_len": 100}, 128),
        ("ntu-full", ntu, {"window": 300}, 64),
        ("ntu-full-no-facts", old, {"window": 300}, 64),
        ("kinetics", kin, {"window": 300, "random_choose": 150, "random_move": True}, 128),
    ):
        t0 = time.perf_counter()
        ds = SkeletonDataset(path, "joint", **kw)
        load = time.perf_counter() - t0
        rows[name] = {
            "batch": batch,
            "load_s": round(load, 2),
            "ms_per_batch": round(time_batches(ds, batch, args.repeats), 2),
        }
    # the transcription, per sample, on the same 128 padded Kinetics samples
    ds = SkeletonDataset(kin, "joint", window=300, test_mode=True)
    (x, _, _), *_ = BatchLoader(ds, 128, shuffle=False)
    padded = x.numpy()
    times = []
    for r in range(max(3, args.repeats // 10)):
        rng = np.random.default_rng(r)
        t0 = time.perf_counter()
        for sample in padded:
            feeder_item(sample, rng, True, True, 150)
        times.append(time.perf_counter() - t0)
    rows["kinetics-reference"] = {
        "batch": 128,
        "load_s": None,
        "ms_per_batch": round(1e3 * statistics.median(times), 2),
    }
    info = {"samples": args.samples, "machine": platform.processor() or platform.machine(), "rows": rows}
    if args.json:
        print(json.dumps(info))
        return
    print("| sampling | batch | load s | ms per batch |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['batch']} | {r['load_s'] if r['load_s'] is not None else '-'} | {r['ms_per_batch']} |")


if __name__ == "__main__":
    main()
