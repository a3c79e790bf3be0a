"""Training throughput of one stream and of the four streams together (`agcn train --modality
joint` / `--modality all`), eager and compiled, and the projected wall time of the 80-epoch
NTU60 xsub recipe.

    python benchmarks/bench_streams.py [--device auto] [--batch-size 16] [--clip-len 100]
        [--samples-per-class 12] [--epochs 2] [--modes eager,compiled] [--precision auto] [--json]

Each setting (streams x mode) runs in its own process, so that peak memory is its own: the real
`agcn train` loop (`engine.fit.fit`: batch loading, each stream's steps, checkpoints)
on the synthetic NTU60-xsub split of `bench_train.py`, validating after the last epoch. Epoch 1
is warm-up (compilation, allocator); the later epochs are measured from each stream's
metrics.jsonl: training clips and training seconds (data loading included). In lock-step the
streams' seconds add up to the epoch's wall time, so the aggregate rate is all streams' clips
over the sum of their seconds. Validation is timed apart, with the same `loop.validate` on the
test split (single clip, batch 64, as `agcn train` validates).

Projection, NTU60 xsub (MMAction2's recipe): per stream 40,091 training clips x 80 epochs and 16
validations (every 5 epochs) of 16,487 samples; wall = streams x (those clips x the measured
seconds per clip). Synthetic clips cost what NTU clips of the same shape cost: the model sees
(N, 3, clip_len, 25, 2) whatever the data.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

NTU60_XSUB = {"train": 40_091, "test": 16_487, "epochs": 80, "validations": 16}


def one_setting(args: dict) -> dict:
    """Train one setting in this process; its measured figures."""
    import torch

    from agcn_cli.engine.config import TrainConfig
    from agcn_cli.engine.data import BatchLoader, SkeletonDataset
    from agcn_cli.engine.device import resolve_device
    from agcn_cli.engine.fit import fit as train
    from agcn_cli.engine.loop import validate
    from agcn_cli.models.agcn import ModelConfig, build_model

    device = resolve_device(args["device"])
    out = Path(args["out"])
    config = TrainConfig(
        data=args["data"], out=str(out), modality=args["modality"], clip_len=args["clip_len"],
        epochs=args["epochs"], batch_size=args["batch_size"], val_every=args["epochs"], device=args["device"],
        compile=args["compile"], precision=args["precision"], tensorboard=False, overwrite=True,
    )  # fmt: skip
    t0 = time.perf_counter()
    train(config, log=lambda _: None)
    wall = time.perf_counter() - t0
    streams = config.streams
    samples = seconds = 0.0
    for s in streams:
        run = out / s if len(streams) > 1 else out
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for row in rows[1:]:  # epoch 1: warm-up
            samples += row["train_samples"]
            seconds += row["epoch_s"]
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    # validation: the same loop.validate agcn train runs, on one stream (all streams cost alike)
    val = SkeletonDataset(Path(args["data"]) / "test.h5", "joint", clip_len=args["clip_len"], test_mode=True)
    loader = BatchLoader(val, 64, shuffle=False)
    model = build_model(ModelConfig(num_classes=60)).to(device)
    amp = torch.bfloat16 if device.type == "cuda" and args["precision"] in ("auto", "bf16") else None
    validate(model, loader, device, amp_dtype=amp)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    validate(model, loader, device, amp_dtype=amp)
    val_s_per_sample = (time.perf_counter() - t1) / len(val)
    return {
        "streams": len(streams),
        "compile": args["compile"],
        "train_samples_per_s": samples / seconds,  # all streams' clips over their seconds
        "val_samples_per_s": 1 / val_s_per_sample,  # one stream
        "gpu_memory_gib": memory,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "run_wall_s": wall,
    }


def project(row: dict) -> float:
    """Seconds of the 80-epoch NTU60 xsub recipe for `row`'s streams at its measured rates."""
    s = row["streams"]
    train = s * NTU60_XSUB["train"] * NTU60_XSUB["epochs"] / row["train_samples_per_s"]
    val = s * NTU60_XSUB["test"] * NTU60_XSUB["validations"] / row["val_samples_per_s"]
    return train + val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=16, help="16 on a CPU; the recipe's 128 on a GPU")
    ap.add_argument("--clip-len", type=int, default=100)
    ap.add_argument("--samples-per-class", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=2, help="epoch 1 is warm-up, the others are measured")
    ap.add_argument("--modes", default="eager", help="eager, compiled, or both: eager,compiled")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one setting, in a child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_setting(json.loads(args.one))))
        return
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (epoch 1 is warm-up)")
    import torch
    from bench_train import make_data

    data = make_data(ROOT / "bench_out" / "streams", args.samples_per_class)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            for modality in ("joint", "all"):
                setting = {
                    "data": str(data), "out": str(Path(tmp) / f"{mode}-{modality}"), "modality": modality,
                    "clip_len": args.clip_len, "epochs": args.epochs, "batch_size": args.batch_size,
                    "device": args.device, "compile": mode == "compiled", "precision": args.precision,
                }  # fmt: skip
                done = subprocess.run(
                    [sys.executable, __file__, "--one", json.dumps(setting)], capture_output=True, text=True
                )
                if done.returncode:
                    sys.exit(f"{mode} {modality}: failed\n{done.stderr[-2000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row["projected_h"] = project(row) / 3600
                rows.append(row)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "clip_len": args.clip_len,
        "precision": args.precision,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(json.dumps(machine))
    print(f"{'streams':>7} {'mode':>9} {'train clips/s':>14} {'val/s':>8} {'GPU GiB':>8} {'RSS GiB':>8} "
          f"{'NTU60 xsub 80 ep':>17}")  # fmt: skip
    for r in rows:
        gpu = "-" if r["gpu_memory_gib"] is None else f"{r['gpu_memory_gib']:.1f}"
        mode = "compiled" if r["compile"] else "eager"
        print(f"{r['streams']:>7} {mode:>9} {r['train_samples_per_s']:>14.1f} {r['val_samples_per_s']:>8.1f} "
              f"{gpu:>8} {r['peak_rss_gib']:>8.2f} {r['projected_h']:>15.1f} h")  # fmt: skip


if __name__ == "__main__":
    main()
