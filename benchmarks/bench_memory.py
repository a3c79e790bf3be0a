"""Host memory of training: the whole machine's PSS and RSS while `agcn train` runs, per stream
count and process count, with the shared joint cache (default) and without (`AGCN_JOINT_CACHE=off`,
each process loading its streams into its own memory, as before issue 27).

    python benchmarks/bench_memory.py [--samples 10000] [--seconds 100] [--json]

1. Writes a synthetic split of `--samples` samples of 150-250 frames, 2 persons, NTU-25 (random
   values; what is measured is the arrays) into bench_out/memory (kept between runs).
2. For each case runs `torchrun --nproc-per-node P -m agcn_cli train ...` (gloo on the CPU) for
   `--seconds` (data loading, then training steps), then stops it with SIGTERM; every 0.2 s it sums
   over the process tree (torchrun and its workers) the proportional set size (PSS: a page shared by
   k processes counts 1/k, so shared memory counts once) and the resident set size (RSS: counted in
   each process), and reports the peaks. The page cache of the joint cache file is the kernel's,
   counted in PSS once as the processes map it.
3. Training speed: `agcn train --json` on the first 512 samples, one process, one epoch, with and
   without the cache: samples/s of the training step (the run's own measure).
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.io.splitwrite import SampleMeta, SplitWriter  # noqa: E402

FRAME_BYTES = 2 * 25 * 3 * 4  # persons x joints x channels x float32


def write_data(path: Path, samples: int, seed: int = 0) -> int:
    if path.exists():
        with __import__("h5py").File(path) as f:
            if len(f["label"]) == samples:
                return int(f["num_frames"][:].sum())
        path.unlink()
    rng = np.random.default_rng(seed)
    attrs = {"layout": "ntu25", "channels": "x,y,z", "recipe": "mmaction2", "normalized": True, "num_classes": 60,
             "split": "train", "benchmark": "ntu60-xsub"}  # fmt: skip
    total = 0
    with SplitWriter(path, attrs, num_persons=2, num_joints=25, num_channels=3) as w:
        for i in range(samples):
            t = int(rng.integers(150, 251))
            x = rng.normal(size=(2, t, 25, 3)).astype(np.float32)
            name = f"S{i // 14400 + 1:03d}C{(i // 4800) % 3 + 1:03d}P{(i // 60) % 40 + 1:03d}R{(i // 2400) % 2 + 1:03d}"
            w.append(x, SampleMeta(f"{name}A{i % 60 + 1:03d}", i % 60), 2)  # names unique
            total += t
    return total


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def memory(pids: list[int]) -> tuple[int, int]:
    """(PSS, RSS) in bytes summed over `pids`."""
    pss = rss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return pss, rss


def measure(data: Path, out: Path, procs: int, modality: str, shared: bool, seconds: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not shared:
        env["AGCN_JOINT_CACHE"] = "off"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    cmd = torchrun + ["-m", "agcn_cli", "train", str(data), "--out", str(out), "--modality", modality,
                      "--clip-len", "16", "--batch-size", str(8 * procs), "--epochs", "1", "--no-tensorboard",
                      "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    peak_pss = peak_rss = 0
    t0 = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - t0 < seconds:
        pss, rss = memory(tree(proc.pid))
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=120)
    stepped = any(out.rglob("last.pt"))  # saved mid-epoch on SIGTERM: the run had begun training
    return {"procs": procs, "modality": modality, "shared": shared, "peak_pss_gib": peak_pss / 2**30,
            "peak_rss_gib": peak_rss / 2**30, "returncode": proc.returncode, "trained": bool(stepped)}  # fmt: skip


def speed(data: Path, out: Path, shared: bool) -> float:
    """Samples/s of the training step, --modality all, one process, on 512 samples of the data's kind."""
    small = data.with_name("small.h5")
    if not small.exists():
        write_data(small, 512, seed=1)
    env = {**os.environ} if shared else {**os.environ, "AGCN_JOINT_CACHE": "off"}
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "agcn_cli", "train", str(small), "--out", str(out), "--modality", "all",
           "--clip-len", "16", "--batch-size", "16", "--epochs", "1", "--no-tensorboard",
           "--device", "cpu"]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in (out / "joint" / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=100.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = ROOT / "bench_out" / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.h5"
    frames = write_data(data, args.samples)
    # (processes, modality, shared, make the cache in this run): the first shared run writes the cache
    cases = [(1, "joint", False, False), (1, "joint", True, True), (1, "all", False, False), (1, "all", True, False),
             (2, "all", False, False), (2, "all", True, False), (2, "all", True, True)]  # fmt: skip
    results = {"cpu": platform.processor() or "", "samples": args.samples, "frames": frames,
               "joint_gib": frames * FRAME_BYTES / 2**30, "runs": []}  # fmt: skip
    for procs, modality, shared, make in cases:
        for old in folder.glob(".train.h5.joints-*.npy") if make else ():
            old.unlink()
        results["runs"].append({**measure(data, folder / "run", procs, modality, shared, args.seconds),
                                "makes_cache": make})  # fmt: skip
        print(json.dumps(results["runs"][-1]), flush=True)
    results["samples_per_s"] = {k: speed(data, folder / "speed", k == "shared") for k in ("private", "shared")}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.samples} samples, {frames:,} frames: joints {results['joint_gib']:.2f} GiB")
    for r in results["runs"]:
        how = ("shared, writes the cache" if r["makes_cache"] else "shared joint cache") if r["shared"] \
            else "each process its own"  # fmt: skip
        peaks = f"peak PSS {r['peak_pss_gib']:.2f} GiB, peak RSS {r['peak_rss_gib']:.2f} GiB"
        print(f"  {r['procs']} process(es), --modality {r['modality']:5s}, {how:22s}: {peaks}, trained {r['trained']}")
    print(f"  samples/s (512 samples, --modality all, one process): {results['samples_per_s']}")


if __name__ == "__main__":
    main()
