"""GPU checks and speed: AGCN against the reference structure on CUDA, bf16 and torch.compile.

    python benchmarks/bench_gpu.py [--out DIR] [--budget-s 300] [--quick] [--only SECTION ...]

One script for a short GPU lease; every section is timed against `--budget-s` and skipped when
it would not fit, and results are appended to DIR/gpu.json as they come.

1. correctness: for both variants, random weights and BatchNorm statistics, eval-mode logits of
   agcn's model and the reference transcription (tests/reference/agcn.py) on the GPU
   against the reference in float64 on the CPU, as ||out - ref|| / ||ref|| and max |diff|, in
   the modes of `agcn train --precision` (fp32: TF32 off; tf32: cuDNN and matmul TF32; bf16
   autocast) and PyTorch's default flags (cuDNN TF32 on, matmul off); and the gradient of the
   loss with respect to the input in training mode (whole backward pass, same flags).
2. speed: training step (forward, cross-entropy, backward, SGD nesterov), T=100, M=2, 25 joints,
   60 classes, batch 64 and 128, reference vs agcn, in fp32 / tf32 / bf16, median of timed
   steps over rotating inputs; agcn with cudnn.benchmark; agcn under torch.compile (compile
   time reported, compiled logits compared with eager).
3. pipeline: `agcn train`'s code path (train.fit) on a 4,096-sample split of random-walk
   skeletons (joint-motion derived on the fly), batch 128, clip 100, bf16, 2 epochs: samples/s
   and the time the step waited for data; BatchLoader alone; `agcn eval`'s 10-clip scoring.

`--quick` shrinks every size for a dry run on a CPU.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_data import write_split  # noqa: E402
from bench_model import make_pair  # noqa: E402

from agcn_cli.engine.config import TrainConfig  # noqa: E402
from agcn_cli.engine.data import BatchLoader, SkeletonDataset  # noqa: E402
from agcn_cli.engine.device import tf32  # noqa: E402
from agcn_cli.engine.fit import fit  # noqa: E402
from agcn_cli.evaluation.evaluate import EvalConfig, evaluate  # noqa: E402
from agcn_cli.models import agcn as agcn_model  # noqa: E402

T0 = time.perf_counter()


class Report:
    def __init__(self, out: Path, budget_s: float):
        self.path, self.budget_s, self.data = out / "gpu.json", budget_s, {}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - T0)

    def add(self, section: str, row: dict) -> None:
        self.data.setdefault(section, []).append(row)
        self.path.write_text(json.dumps(self.data, indent=1))
        print(f"[{time.perf_counter() - T0:6.1f}s] {section}: {json.dumps(row)}", flush=True)


def flags(mode: str):
    """The TF32 flags of `agcn train --precision mode`, for a whole step: fp32 and bf16 TF32 off,
    tf32 cuDNN and matmul TF32 on; "default" keeps PyTorch's own (cuDNN TF32 on, matmul off)."""
    return nullcontext() if mode == "default" else tf32(mode == "tf32")


def cast(mode: str):
    """bf16 autocast for the forward pass (the loss and backward stay outside, as in agcn train)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else nullcontext()


@contextmanager
def precision(mode: str):
    """Flags and autocast together: for forward-only work."""
    with flags(mode), cast(mode):
        yield


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return {
        "rel": float((out - ref).norm() / ref.norm()),
        "max_abs": float((out - ref).abs().max()),
        "finite": bool(torch.isfinite(out).all()),
    }


def correctness(rep: Report, device: torch.device, n: int, frames: int) -> None:
    for variant in agcn_model.VARIANTS:
        ref, ours = make_pair(variant, randomise=True)
        x = torch.randn(n, 3, frames, 25, 2)
        y = torch.randint(0, 60, (n,))
        ref64 = copy.deepcopy(ref).double().eval()
        with torch.no_grad():
            logits64 = ref64(x.double())
        xr = x.double().requires_grad_()
        ref64.train()
        F.cross_entropy(ref64(xr), y).backward()
        grad64 = xr.grad
        ref.to(device), ours.to(device)
        xd, yd = x.to(device), y.to(device)
        for mode in ("fp32", "default", "tf32", "bf16"):
            for name, model in (("reference", ref), ("agcn", ours)):
                model.eval()
                with torch.no_grad(), precision(mode):
                    logits = model(xd).float()
                trained = copy.deepcopy(model).train()  # a training-mode pass moves BatchNorm statistics
                xg = xd.clone().requires_grad_()
                with flags(mode):
                    with cast(mode):
                        logits_train = trained(xg)
                    F.cross_entropy(logits_train.float(), yd).backward()
                row = {"variant": variant, "mode": mode, "model": name}
                row |= {f"logits_{k}": v for k, v in compare(logits, logits64).items()}
                row |= {f"input_grad_{k}": v for k, v in compare(xg.grad, grad64).items() if k != "finite"}
                rep.add("correctness", row)
        with torch.no_grad(), precision("fp32"):
            ref.eval(), ours.eval()
            rep.add("correctness", {"variant": variant, "mode": "fp32", "model": "agcn vs reference, same device",
                                    "logits_max_abs": float((ours(xd) - ref(xd)).abs().max())})  # fmt: skip


def time_steps(model, device, batch, frames, mode, steps, warmup) -> dict:
    """Median seconds per training step over rotating inputs; the first step's time (compile)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    xs = [torch.randn(batch, 3, frames, 25, 2, device=device) for _ in range(3)]
    ys = [torch.randint(0, 60, (batch,), device=device) for _ in range(3)]
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with flags(mode):
            with cast(mode):
                logits = model(xs[i % 3])
            F.cross_entropy(logits.float(), ys[i % 3]).backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    timed = times[warmup:]
    med = statistics.median(timed)
    return {"ms_per_step": round(1000 * med, 2), "samples_per_s": round(batch / med, 1),
            "first_step_s": round(times[0], 2), "spread_ms": round(1000 * (max(timed) - min(timed)), 2)}  # fmt: skip


def speed(rep: Report, device: torch.device, batches, frames, steps, warmup, est_s) -> None:
    """Eager rows for both models (est_s: a guess of one row's cost, to stay in budget)."""
    plan = [("mmaction2", b, m) for b in batches for m in ("bf16", "tf32", "fp32")]
    plan += [("2s-agcn", batches[-1], m) for m in ("bf16", "fp32")]
    for variant, batch, mode in plan:
        if rep.left() < 2 * est_s:
            rep.add("skipped", {"what": f"speed {variant} batch {batch} {mode}", "left_s": round(rep.left())})
            continue
        ref, ours = make_pair(variant)
        for name, model in (("reference", ref), ("agcn", ours)):
            row = time_steps(model.to(device), device, batch, frames, mode, steps, warmup)
            rep.add("speed", {"variant": variant, "batch": batch, "mode": mode, "model": name} | row)
            del model
        del ref, ours
        if device.type == "cuda":
            torch.cuda.empty_cache()


def tuned(rep: Report, device: torch.device, batches, frames, steps, warmup, compile_est_s) -> None:
    """agcn with cudnn.benchmark, then under torch.compile (bf16 first, then tf32)."""
    torch.backends.cudnn.benchmark = True
    for batch in batches:
        _, ours = make_pair("mmaction2")
        row = time_steps(ours.to(device), device, batch, frames, "bf16", steps, warmup)
        what = {"variant": "mmaction2", "batch": batch, "mode": "bf16", "model": "agcn cudnn.benchmark"}
        rep.add("speed", what | row)
    for mode, batch in [("bf16", batches[-1]), ("bf16", batches[0]), ("tf32", batches[-1])]:
        if rep.left() < compile_est_s:
            rep.add("skipped", {"what": f"compile {mode} batch {batch}", "left_s": round(rep.left())})
            continue
        torch.manual_seed(1)
        _, ours = make_pair("mmaction2", randomise=True)
        ours.to(device).eval()
        compiled = torch.compile(ours)
        x = torch.randn(batch, 3, frames, 25, 2, device=device)
        with torch.no_grad(), precision(mode):
            check = compare(compiled(x).float(), ours(x).float())
        row = time_steps(compiled, device, batch, frames, mode, steps, warmup)
        rep.add("speed", {"variant": "mmaction2", "batch": batch, "mode": mode, "model": "agcn compiled+benchmark",
                          "eval_logits_vs_eager_rel": check["rel"]} | row)  # fmt: skip
        torch._dynamo.reset()
    torch.backends.cudnn.benchmark = False


def pipeline(rep: Report, device: torch.device, tmp: Path, samples: int, batch: int, frames: int, epochs: int) -> None:
    split = tmp / "split.h5"
    t0 = time.perf_counter()
    write_split(split, samples)
    rep.add("pipeline", {"what": "write split", "samples": samples, "seconds": round(time.perf_counter() - t0, 2)})
    ds = SkeletonDataset(split, "joint-motion", clip_len=frames)
    for prefetch in (0, 2):
        loader = BatchLoader(ds, batch, pin_memory=True, prefetch=prefetch)
        t0, n = time.perf_counter(), 0
        for x, _, _ in loader:
            x = x.to(device, non_blocking=True)
            n += x.shape[0]
        sync(device)
        rep.add("pipeline", {"what": f"BatchLoader alone to {device.type}, prefetch {prefetch}",
                             "samples_per_s": round(n / (time.perf_counter() - t0))})  # fmt: skip
    precision_name = "bf16" if device.type == "cuda" else "fp32"
    for compiled in (False, True):
        if compiled and rep.left() < 90:
            rep.add("skipped", {"what": "fit with --compile", "left_s": round(rep.left())})
            continue
        cfg = TrainConfig(data=str(split), out=str(tmp / f"run-{compiled}"), modality="joint-motion", clip_len=frames,
                          epochs=epochs, batch_size=batch, precision=precision_name, compile=compiled,
                          tensorboard=False, overwrite=True, device=device.type)  # fmt: skip
        t0 = time.perf_counter()
        summary = fit(cfg, log=lambda line: print(line, flush=True))
        last = summary["last"]
        rep.add("pipeline", {"what": f"agcn train (fit), {precision_name}, compile {compiled}",
                             "wall_s": round(time.perf_counter() - t0, 1),
                             "last_epoch_samples_per_s": round(last["samples_per_s"], 1),
                             "last_epoch_s": round(last["epoch_s"], 2),
                             "last_epoch_data_wait_s": round(last["data_wait_s"], 3),
                             "train_loss": round(last["train_loss"], 4)})  # fmt: skip
    ckpt = tmp / "run-False" / "last.pt"
    for bf16 in (False, True):
        t0 = time.perf_counter()
        result = evaluate(EvalConfig(ckpt, split, clips=10, batch_size=16, device=device.type, bf16=bf16))
        sec = time.perf_counter() - t0
        rep.add("pipeline", {"what": f"agcn eval, 10 clips x {frames} frames, bf16 {bf16}",
                             "samples_per_s": round(samples / sec, 1), "seconds": round(sec, 2),
                             "top1": round(result.metrics.top1, 3)})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench_out" / "gpu")))
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a dry run on a CPU")
    ap.add_argument("--only", nargs="+", choices=("correctness", "speed", "pipeline", "tuned"), help="these sections")
    args = ap.parse_args()
    rep = Report(args.out, args.budget_s)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
           "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
           "default_cudnn_tf32": torch.backends.cudnn.allow_tf32,
           "default_matmul_tf32": torch.backends.cuda.matmul.allow_tf32}  # fmt: skip
    rep.add("env", env)
    if args.quick:
        sizes = dict(n=2, frames=12, batches=(2, 4), steps=2, warmup=1, samples=64, pipe_batch=8, epochs=1)
    else:
        sizes = dict(n=8, frames=100, batches=(64, 128), steps=10, warmup=3, samples=4096, pipe_batch=128, epochs=2)
    sections = [
        ("correctness", lambda: correctness(rep, device, sizes["n"], sizes["frames"])),
        ("speed", lambda: speed(rep, device, sizes["batches"], sizes["frames"], sizes["steps"], sizes["warmup"], 8)),
        (
            "pipeline",
            lambda: pipeline(
                rep, device, Path(tmp), sizes["samples"], sizes["pipe_batch"], sizes["frames"], sizes["epochs"]
            ),
        ),  # fmt: skip
        ("tuned", lambda: tuned(rep, device, sizes["batches"], sizes["frames"], sizes["steps"], sizes["warmup"], 75)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in sections:
            if args.only and name not in args.only:
                continue
            if rep.left() < 20:
                rep.add("skipped", {"what": name, "left_s": round(rep.left())})
                continue
            try:
                run()
            except Exception as e:  # noqa: BLE001 - one failing section must not lose the others
                rep.add("failed", {"section": name, "error": f"{type(e).__name__}: {e}"})
    print("\nspeed (ms/step, samples/s):")
    for r in rep.data.get("speed", []):
        print(f"  {r['variant']:9s} b{r['batch']:<4d} {r['mode']:5s} {r['model']:26s} "
              f"{r['ms_per_step']:9.2f} {r['samples_per_s']:9.1f}  first {r['first_step_s']} s")  # fmt: skip
    print(f"total {time.perf_counter() - T0:.0f} s")


if __name__ == "__main__":
    main()
