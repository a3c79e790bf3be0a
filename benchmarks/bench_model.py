"""Training-step speed of agcn's AGCN against the reference structure, same weights.

One step = forward + cross-entropy + backward + SGD (momentum 0.9, nesterov, weight decay
5e-4) at batch 16, T=100, M=2, 25 joints, 60 classes, fp32. The two models are timed in
alternation (ref, ours, ref, ours, ...) so that load from other processes hits both alike;
the medians are reported. Before timing, the outputs of one forward in eval mode are
compared (same weights, loaded through agcn's foreign-checkpoint loader).

    python benchmarks/bench_model.py [--variant mmaction2|2s-agcn] [--steps 10] [--threads 2] [--bf16]

`--bf16` adds agcn's step under bfloat16 autocast on the CPU (`agcn train --precision bf16`),
timed in the same alternation, and says which bfloat16 units the CPU has.
"""

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agcn_cli.engine.device import cpu_bf16_units  # noqa: E402
from agcn_cli.models import agcn as agcn_model  # noqa: E402
from agcn_cli.models.foreign import load_foreign_state_dict  # noqa: E402
from tests.reference.agcn import RefAGCN, RefMMAAGCN  # noqa: E402


def make_pair(variant: str, randomise: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The reference model and agcn's, holding the same weights.

    `randomise` replaces the published init (whose near-zero graph-unit BatchNorm hides most
    of each graph unit) with random parameters and BatchNorm statistics, for comparisons.
    """
    torch.manual_seed(0)
    ref = RefAGCN(graph="ntu-2s-agcn") if variant == "2s-agcn" else RefMMAAGCN()
    if randomise:
        with torch.no_grad():
            for p in ref.parameters():
                p.normal_(0.0, 0.1)
            for name, b in ref.named_buffers():
                if name.endswith("running_var"):
                    b.uniform_(0.5, 2.0)
                elif name.endswith("running_mean"):
                    b.normal_(0.0, 0.1)
    ours, _ = load_foreign_state_dict(agcn_model.ModelConfig(variant=variant), ref.state_dict())
    return ref, ours


def step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as agcn train --precision bf16
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mmaction2", choices=agcn_model.VARIANTS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time agcn's step under CPU bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x = torch.randn(args.batch, 3, args.frames, 25, 2)
    y = torch.randint(0, 60, (args.batch,))
    ref, ours = make_pair(args.variant, randomise=True)
    ref.eval(), ours.eval()
    with torch.no_grad():
        diff = (ref(x) - ours(x)).abs().max().item()
    ref, ours = make_pair(args.variant)
    params = agcn_model.count_parameters(ours)
    macs = agcn_model.measure_macs(ours, (1, 3, args.frames, 25, 2))

    steps = {"reference": step_timer(ref, x, y), "agcn": step_timer(ours, x, y)}
    if args.bf16:
        _, twin = make_pair(args.variant)  # its own weights and optimizer: the fp32 model's are not shared
        steps["agcn bf16"] = step_timer(twin, x, y, bf16=True)
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(step())

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}")
    print(f"CPU bfloat16 units: {cpu_bf16_units() or 'none (bf16 falls back to slow reference kernels)'}")
    gmacs = macs / 1e9
    print(f"variant {args.variant}: {params:,} parameters, {gmacs:.2f} GMACs per {args.frames}-frame 2-person clip")
    print(f"eval-mode logits (random weights), max |agcn - reference| = {diff:.2e}")
    print(f"train step, batch {args.batch}, T={args.frames}, M=2, fp32 unless named (median of {args.steps}):")
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in med.items():
        print(f"  {name:10s} {t * 1000:8.1f} ms/step  {args.batch / t:7.1f} samples/s")
    print(f"  speed-up   {med['reference'] / med['agcn']:.2f}x")
    if args.bf16:
        print(f"  agcn bf16 vs reference fp32: {med['reference'] / med['agcn bf16']:.2f}x, "
              f"vs agcn fp32: {med['agcn'] / med['agcn bf16']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
