"""Preprocessing throughput and peak memory: agcn vs the original 2s-AGCN pipeline.

    python benchmarks/bench_preprocess.py --files 2000 [--reference-files 100] [--repeats 3] [--json]

1. Writes `--files` synthetic `.skeleton` files (agcn synth: 60 classes, 40 performers,
   frames 60-120 by default) into bench_out/raw (kept between runs).
2. Runs `agcn preprocess` on them for each recipe as a subprocess, polling the RSS of the whole
   process tree (main + workers) to get the peak; also on a quarter of the files, to show
   that peak memory does not grow with the number of files.
3. Runs the structure-faithful transcription of the original 2s-AGCN scripts
   (tests/reference/preprocess.py: dict parsing, per-joint loops) on `--reference-files`
   of the same files, one process (the original is single-process), and reports its files/s.

Timings are the fastest of `--repeats` runs (this machine is a VM whose speed varies by up to
30 % from minute to minute); peak RSS is the largest. The speed-up is the median over pairs of
an agcn 2s-agcn run and an original run made right after it, so both see the same speed.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reference.preprocess import ref_2sagcn_sample  # noqa: E402


def tree_rss_kb(pid: int) -> int:
    """Summed resident memory of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
        stack.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak tree RSS (MiB) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kb(proc.pid))
        time.sleep(0.1)  # scanning /proc costs CPU that the measured run would otherwise have
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t0, peak // 1024


def make_files(raw: Path, files: int, min_frames: int, max_frames: int) -> list[Path]:
    from agcn_cli.sources.synth import SynthConfig, generate

    existing = sorted(raw.glob("*.skeleton")) if raw.exists() else []
    if len(existing) == files:
        return existing
    shutil.rmtree(raw, ignore_errors=True)
    # all 60 NTU60 actions (8 hand-made, the rest procedural), 40 performers, 17 setups
    actions = tuple(range(1, 61))
    config = SynthConfig(
        actions=actions,
        subjects=tuple(range(1, 41)),
        setups=tuple(range(1, 18)),
        samples_per_class=-(-files // len(actions)),
        min_frames=min_frames,
        max_frames=max_frames,
        seed=1,
    )
    paths = sorted(generate(raw, config))
    for extra in paths[files:]:
        extra.unlink()
    return paths[:files]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--reference-files", type=int, default=100)
    ap.add_argument("--min-frames", type=int, default=60)
    ap.add_argument("--max-frames", type=int, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the fastest is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    raw = args.out / "raw"
    paths = make_files(raw, args.files, args.min_frames, args.max_frames)
    size_mb = sum(p.stat().st_size for p in paths) / 2**20
    agcn = [sys.executable, "-m", "agcn_cli"]
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "files": len(paths),
        "raw_mb": round(size_mb, 1),
        "agcn": {},
    }
    quarter = args.out / "raw_quarter"
    shutil.rmtree(quarter, ignore_errors=True)
    quarter.mkdir(parents=True)
    for p in paths[: len(paths) // 4]:
        os.link(p, quarter / p.name)
    ref_paths = paths[: args.reference_files]

    def reference_seconds() -> float:
        t0 = time.perf_counter()
        for p in ref_paths:
            ref_2sagcn_sample(p)
        return time.perf_counter() - t0

    ratios, ref_runs = [], []
    for recipe in ("mmaction2", "2s-agcn"):
        for label, src in (("all", raw), ("quarter", quarter)):
            dest = args.out / f"h5_{recipe}_{label}"
            cmd = [*agcn, "preprocess", str(src), str(dest), "--recipe", recipe, "--overwrite"]
            n = len(paths) if label == "all" else len(paths) // 4
            runs = []
            for _ in range(args.repeats):
                runs.append(run_measured(cmd))
                if (recipe, label) == ("2s-agcn", "all"):
                    # the original right after each run, so that both see the same machine speed
                    ref_runs.append(reference_seconds())
                    ratios.append((n / runs[-1][0]) / (len(ref_paths) / ref_runs[-1]))
            seconds, peak = min(r[0] for r in runs), max(r[1] for r in runs)
            results["agcn"][f"{recipe}/{label}"] = {
                "files": n,
                "seconds": round(seconds, 2),
                "files_per_s": round(n / seconds, 1),
                "peak_rss_mb": peak,
            }

    ref_seconds = min(ref_runs)
    ref_rate = len(ref_paths) / ref_seconds
    results["reference_2sagcn"] = {
        "files": len(ref_paths),
        "seconds": round(ref_seconds, 2),
        "files_per_s": round(ref_rate, 1),
        # the original also holds (N, 3, 300, 25, 2) float32 for the whole split in memory
        "array_mb_for_all_files": round(len(paths) * 3 * 300 * 25 * 2 * 4 / 2**20, 1),
    }
    results["speedup_2sagcn_per_run"] = [round(r, 1) for r in ratios]
    results["speedup_2sagcn"] = round(sorted(ratios)[len(ratios) // 2], 1)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']}; {len(paths)} files, {size_mb:.0f} MB of .skeleton text")
    print("| pipeline | files | seconds | files/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for key, r in results["agcn"].items():
        print(f"| agcn {key} | {r['files']} | {r['seconds']} | {r['files_per_s']} | {r['peak_rss_mb']} |")
    r = results["reference_2sagcn"]
    print(f"| original 2s-AGCN (transcription) | {r['files']} | {r['seconds']} | {r['files_per_s']} | "
          f"holds {r['array_mb_for_all_files']} MiB array for {len(paths)} files |")  # fmt: skip
    per_run = ", ".join(f"{r}x" for r in results["speedup_2sagcn_per_run"])
    print(
        f"speed-up, 2s-agcn recipe vs original (median of back-to-back pairs): {results['speedup_2sagcn']}x ({per_run})"
    )


if __name__ == "__main__":
    main()
