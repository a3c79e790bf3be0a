"""`agcn watch` speed on the CPU: windows/s, the latency of a window, the real-time factor.

    python benchmarks/bench_watch.py [--seconds 20] [--people 1,2,4] [--json]

Two full-size AGCN checkpoints (NTU-25, 60 classes, 3.47M parameters, random weights: speed does
not depend on them), joint and bone, trained clip length 100, fused 1:1, as `agcn watch` runs them
with its defaults: a window of 100 frames (the clip length) every 8 frames. The input is `--seconds`
of a 30 frames/s recording of `--people` people (synthetic NTU bodies, `agcn synth`), fed frame by
frame through `evaluation/watch.Watcher`, as a live stream would be. For each mode:
- windows/s: windows scored / wall time (the pose estimator excluded: keypoints are given);
- latency: the median time from a frame's arrival to its windows' results (all people, both models);
- real-time factor: frames processed a second / 30.
Modes: fp32 and bf16 autocast (AMX/AVX512-BF16 CPUs); and, for scale, "eval's way", what `agcn
eval` computes per window today: 10 test clips through the model with both person slots (the
clips/s figure that pyskl #70 reports).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.evaluation.watch import Watcher, WatchSettings, plan_watch  # noqa: E402
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint  # noqa: E402
from agcn_cli.models.agcn import ModelConfig, build_model  # noqa: E402
from agcn_cli.skeleton.layouts import get_layout  # noqa: E402
from agcn_cli.sources.ntu import parse_skeleton  # noqa: E402
from agcn_cli.sources.recipes import select_bodies_mmaction2  # noqa: E402
from agcn_cli.sources.sequences import Frame, Sequence  # noqa: E402
from agcn_cli.sources.synth import SynthConfig, generate  # noqa: E402
from benchmarks.bench_extract import cpu_model  # noqa: E402

FPS = 30


def bodies(folder: Path, people: int, frames: int) -> np.ndarray:
    """(P, T, 25, 3) raw NTU bodies: synthetic samples one after another, each person their own."""
    generate(folder, SynthConfig(actions=(23, 24, 27, 8), samples_per_class=2 * people, min_frames=60,
                                 max_frames=100, workers=1))  # fmt: skip
    samples = [select_bodies_mmaction2(parse_skeleton(f))[0] for f in sorted(folder.glob("*.skeleton"))]
    out = np.zeros((people, frames, 25, 3), np.float32)
    for p in range(people):
        seq = np.concatenate(samples[p::people] * 20)[:frames]
        out[p] = seq + np.array([1.5 * p, 0, 0], np.float32)  # side by side
    return out


def run(plan, keypoints: np.ndarray) -> dict:
    seq = Sequence("bench", "bench", plan.layout, None, False, [])
    watcher = Watcher(plan.scorers, plan.names, plan.settings, seq)
    latencies, windows = [], 0
    t0 = time.perf_counter()
    for t in range(keypoints.shape[1]):
        t1 = time.perf_counter()
        events = watcher.push(Frame(t, keypoints[:, t], None, list(range(keypoints.shape[0]))))
        n = sum(1 for e in events if hasattr(e, "probs"))
        if n:
            latencies.append(time.perf_counter() - t1)
            windows += n
    wall = time.perf_counter() - t0
    return {"windows": windows, "windows_per_s": windows / wall, "latency_ms": 1000 * float(np.median(latencies)),
            "realtime": keypoints.shape[1] / wall / FPS}  # fmt: skip


@torch.no_grad()
def evals_way(plan, people: int, repeats: int = 3) -> float:
    """Clips/s of 10 clips x 2 person slots per window per model, as `agcn eval` scores a sample."""
    x = torch.randn(people * 10, 3, 100, 25, 2)
    x[..., 1] = 0
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for sc in plan.scorers:
            sc.model(x)
        best = max(best, people * 10 * len(plan.scorers) / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--people", default="1,2,4")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for stream in ("joint", "bone"):
            model = build_model(ModelConfig(num_classes=60)).eval()
            save_checkpoint(tmp / f"{stream}.pt", model, DataInfo(modality=stream, clip_len=100), epoch=1)
        counts = [int(p) for p in args.people.split(",")]
        frames = int(args.seconds * FPS)
        kp = bodies(tmp / "raw", max(counts), frames)
        for bf16 in (False, True):
            settings = WatchSettings(window=0, stride=8, bf16=bf16)
            plan = plan_watch([tmp / "joint.pt", tmp / "bone.pt"], None, settings, window=None)
            for p in counts:
                r = run(plan, kp[:p])
                r.update(people=p, mode="bf16" if bf16 else "fp32")
                results["runs"].append(r)
        plan = plan_watch([tmp / "joint.pt", tmp / "bone.pt"], None, WatchSettings(0, 8), window=None)
        results["evals_way_clips_per_s"] = {p: evals_way(plan, p) for p in counts}
    assert get_layout("ntu25").num_joints == 25
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['cpu']}, {results['cores']} cores, {results['torch_threads']} torch threads; joint+bone, "
          f"window 100, stride 8, {args.seconds:.0f} s at {FPS} frames/s")  # fmt: skip
    for r in results["runs"]:
        speed = f"{r['windows_per_s']:6.1f} windows/s, latency {r['latency_ms']:6.1f} ms"
        print(f"  {r['mode']} {r['people']} people: {speed}, {r['realtime']:.2f}x real time")
    for p, v in results["evals_way_clips_per_s"].items():
        print(f"  eval's way (10 clips x 2 person slots a window), {p} people: {v:.1f} clips/s")


if __name__ == "__main__":
    main()
