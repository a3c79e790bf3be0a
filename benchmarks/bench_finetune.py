"""Fine-tuning (`agcn train --init-from`) against training from scratch, on a new, smaller class set.

    python benchmarks/bench_finetune.py [--seeds 0 1 2 3 4] [--source-epochs 6] [--epochs 4]
                                        [--samples-per-class 24] [--clip-len 12] [--threads 1] [--json]

1. `agcn synth` writes two disjoint class sets (seed 0), each preprocessed as ntu60-xsub
   (performers 1 2 4 5 8 train, 3 6 7 test): the source set, 10 actions (the hand-made A022
   cheer up, A023 hand waving, A024 kicking, A026 hopping, A027 jump up, A031 pointing, A035
   nod, A038 salute, A042 staggering, A043 falling), and the target set, 4 actions none of
   them has seen (A005, a procedural class, A008 sit down, A009 stand up, A010 clapping);
   sit down / stand up is one motion reversed in time.
2. Trains the source model once (`fit`, the `agcn train` code path; 60-way classifier, the
   file's class count).
3. Per seed, on the target set with the same epochs, lr schedule, batch and seed: from scratch;
   fine-tuned from the source's last.pt (10-way classifier: labels are NTU ids - 1, so the
   target's are 4, 7, 8, 9; the 60-way head is re-initialised); and fine-tuned with the backbone
   frozen for the first epoch and its lr x 0.1. Reports single-clip top-1 on the target's
   held-out performers after the first epoch and after the last.

Sized for one thread of a shared 2-core CPU: about 10 minutes with the defaults (the
source run about 160 s, each target run about 30 s).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.engine.config import TrainConfig  # noqa: E402
from agcn_cli.engine.fit import fit  # noqa: E402
from agcn_cli.sources.formats import convert  # noqa: E402
from agcn_cli.sources.pipeline import ConvertConfig  # noqa: E402
from agcn_cli.sources.synth import SynthConfig, generate  # noqa: E402

SOURCE = (22, 23, 24, 26, 27, 31, 35, 38, 42, 43)  # NTU ids; label = id - 1
TARGET = (5, 8, 9, 10)  # disjoint from SOURCE
TARGET_CLASSES = max(TARGET)  # labels 4, 7, 8, 9 fit a 10-way classifier
RUNS = {  # name -> the TrainConfig fields that differ from scratch training
    "scratch": {},
    "fine-tune": {"init_from": True},
    "fine-tune, frozen 1 epoch, backbone lr x0.1": {"init_from": True, "freeze_epochs": 1, "backbone_lr_mult": 0.1},
}


def make_data(out: Path, name: str, actions: tuple[int, ...], samples_per_class: int) -> Path:
    data = out / f"{name}-{samples_per_class}"
    if not (data / "test.h5").is_file():
        raw = out / f"raw-{name}-{samples_per_class}"
        generate(raw, SynthConfig(actions=actions, samples_per_class=samples_per_class, workers=1))
        convert(ConvertConfig(raw, data, benchmark="ntu60-xsub", workers=1, overwrite=True))
    return data


def train(data: Path, out: Path, args: argparse.Namespace, **kw) -> tuple[list[dict], float]:
    """The metrics rows of one run, and its wall time."""
    config = TrainConfig(data=str(data), out=str(out), clip_len=args.clip_len, batch_size=args.batch_size,
                         lr=args.lr, auto_scale_lr=False, tensorboard=False, overwrite=True, **kw)  # fmt: skip
    t = time.perf_counter()
    fit(config, log=lambda _: None)
    wall = time.perf_counter() - t
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds of the target runs")
    ap.add_argument("--source-epochs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4, help="epochs of every target run")
    ap.add_argument("--samples-per-class", type=int, default=24)
    ap.add_argument("--clip-len", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.05, help="not scaled with the batch")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "finetune")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    source_data = make_data(args.out, "source", SOURCE, args.samples_per_class)
    target_data = make_data(args.out, "target", TARGET, args.samples_per_class)
    data_s = time.perf_counter() - t0
    rows, source_s = train(source_data, args.out / "run-source", args, epochs=args.source_epochs, seed=0,
                          val_every=args.source_epochs)  # fmt: skip
    source = {"top1": rows[-1]["val_top1"], "wall_s": source_s, "train_samples": rows[-1]["train_samples"]}
    if not args.json:
        print(f"source: {len(SOURCE)} classes, top-1 {100 * source['top1']:.1f}% after {args.source_epochs} epochs "
              f"({source_s:.0f} s)", flush=True)  # fmt: skip
    ckpt = str(args.out / "run-source" / "last.pt")
    results = []
    for seed in args.seeds:
        for i, (name, kw) in enumerate(RUNS.items()):
            kw = {**kw, "init_from": ckpt} if kw.get("init_from") else kw
            out = args.out / f"run-target-{i}-seed{seed}"
            rows, wall = train(target_data, out, args, epochs=args.epochs, seed=seed, val_every=1,
                               num_classes=TARGET_CLASSES, **kw)  # fmt: skip
            r = {"run": name, "seed": seed, "top1_epoch1": rows[0]["val_top1"], "top1": rows[-1]["val_top1"],
                 "wall_s": wall, "train_samples": rows[-1]["train_samples"]}  # fmt: skip
            results.append(r)
            if not args.json:
                print(f"seed {seed}  {name:45s} top-1 {100 * r['top1_epoch1']:5.1f}% after epoch 1, "
                      f"{100 * r['top1']:5.1f}% after {args.epochs}  ({wall:.0f} s)", flush=True)  # fmt: skip
    summary = {}
    for name in RUNS:
        finals = [r["top1"] for r in results if r["run"] == name]
        firsts = [r["top1_epoch1"] for r in results if r["run"] == name]
        summary[name] = {"mean_top1": statistics.mean(finals), "mean_top1_epoch1": statistics.mean(firsts)}
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)",
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
        "source_classes": SOURCE,
        "target_classes": TARGET,
        "data_s": data_s,
        "source": source,
        "results": results,
        "summary": summary,
        "total_s": time.perf_counter() - t0,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, s in summary.items():
        first, final = 100 * s["mean_top1_epoch1"], 100 * s["mean_top1"]
        print(f"mean over seeds  {name:45s} {first:5.1f}% after epoch 1, {final:5.1f}% final")
    print(f"total {report['total_s']:.0f} s ({report['machine']})")


if __name__ == "__main__":
    main()
