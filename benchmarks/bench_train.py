"""Training on synthetic NTU data, all four streams: top-1, wall time and train-step throughput.

    python benchmarks/bench_train.py [--samples-per-class 40] [--epochs 8] [--clip-len 24]
                                     [--batch-size 16] [--lr 0.05] [--modalities joint bone ...] [--json]

1. Writes the default synthetic classes (8 NTU actions, `agcn synth`, seed 0) and preprocesses
   them as ntu60-xsub (performers 1 2 4 5 8 train, 3 6 7 test) into bench_out/train/data.
2. Trains the MMAction2-variant AGCN (`agcn_cli.engine.fit.fit`, the `agcn train` code path) once per
   stream, derived on the fly, validating on the held-out performers every epoch, and reports
   the final and best single-clip top-1, the wall time of the run and the training samples/s
   (the best epoch's, data loading included, and the mean data-wait per epoch).
3. Times the bare training step (forward, backward, SGD) at the recipe's shape, batch 16 x 100
   frames x 2 persons, for reference.

The defaults are sized for a 2-core CPU (about 13 minutes: four runs of about 190 s); on a GPU
raise the epochs and clip length.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.engine.config import TrainConfig  # noqa: E402
from agcn_cli.engine.device import DEVICES, resolve_device  # noqa: E402
from agcn_cli.engine.fit import fit  # noqa: E402
from agcn_cli.models.agcn import ModelConfig, build_model  # noqa: E402
from agcn_cli.skeleton.streams import STREAMS  # noqa: E402
from agcn_cli.sources.formats import convert  # noqa: E402
from agcn_cli.sources.pipeline import ConvertConfig  # noqa: E402
from agcn_cli.sources.synth import SynthConfig, generate  # noqa: E402


def make_data(out: Path, samples_per_class: int, **synth) -> Path:
    """Synthetic files (`SynthConfig` defaults, or `synth`'s) as ntu60-xsub split files, made once."""
    key = "-".join([str(samples_per_class), *(f"{k}{'_'.join(map(str, v)) if isinstance(v, tuple) else v}"
                                               for k, v in sorted(synth.items()))])  # fmt: skip
    data = out / f"data-{key}"
    if not (data / "test.h5").is_file():
        generate(out / f"raw-{key}", SynthConfig(samples_per_class=samples_per_class, **synth))
        convert(ConvertConfig(out / f"raw-{key}", data, benchmark="ntu60-xsub", overwrite=True))
    return data


def step_throughput(device: torch.device, batch: int = 16, clip_len: int = 100, steps: int = 3) -> float:
    """Samples/s of forward + backward + SGD step at (batch, 3, clip_len, 25, 2), after one warm-up."""
    model = build_model(ModelConfig(num_classes=60)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, clip_len, 25, 2, device=device)  # (N, C, T, V, M)
    y = torch.randint(0, 60, (batch,), device=device)
    for i in range(steps + 1):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples-per-class", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--clip-len", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.05, help="not scaled with the batch")
    ap.add_argument("--modalities", nargs="+", default=list(STREAMS), choices=STREAMS)
    ap.add_argument("--device", default="auto", choices=DEVICES)
    ap.add_argument("--precision", default="auto", help="auto | fp32 | bf16 (CPU bf16: BENCHMARKS.md)")
    ap.add_argument("--demo-classes", action="store_true", help="make demo's synthetic classes and 30-50 frames")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "train")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    demo = {"actions": (8, 10, 23, 24, 26, 27, 35, 52), "min_frames": 30, "max_frames": 50}
    data = make_data(args.out, args.samples_per_class, **(demo if args.demo_classes else {}))
    data_s = time.perf_counter() - t0
    results = []
    for modality in args.modalities:
        config = TrainConfig(
            data=str(data),
            out=str(args.out / f"run-{modality}"),
            modality=modality,
            clip_len=args.clip_len,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            auto_scale_lr=False,
            val_every=1,
            num_classes=60,
            device=args.device,
            precision=args.precision,
            tensorboard=False,
            overwrite=True,
        )
        t = time.perf_counter()
        summary = fit(config, log=lambda _: None)
        wall = time.perf_counter() - t
        rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
        results.append(
            {
                "modality": modality,
                "top1": rows[-1]["val_top1"],
                "best_top1": summary["best_top1"],
                "best_epoch": summary["best_epoch"],
                "wall_s": wall,
                "train_samples_per_s": max(r["samples_per_s"] for r in rows),
                "data_wait_s_per_epoch": sum(r["data_wait_s"] for r in rows) / len(rows),
                "train_samples": rows[-1]["train_samples"],
            }
        )
        if not args.json:
            r = results[-1]
            print(
                f"{modality:13s} top-1 {100 * r['top1']:5.1f}% (best {100 * r['best_top1']:5.1f}% @{r['best_epoch']})  "
                f"{r['wall_s']:6.1f} s  {r['train_samples_per_s']:6.1f} samples/s  "
                f"data-wait {r['data_wait_s_per_epoch']:.2f} s/epoch",
                flush=True,
            )
    device = resolve_device(args.device)
    step = step_throughput(device)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {device.type}",
        "setup": {k: v for k, v in vars(args).items() if k not in ("out", "json")},
        "data_s": data_s,
        "results": results,
        "step_samples_per_s_b16_t100": step,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"train step, batch 16 x 100 frames x 2 persons: {step:.1f} samples/s ({report['machine']})")


if __name__ == "__main__":
    main()
