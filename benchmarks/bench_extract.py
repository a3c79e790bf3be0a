"""`agcn extract` speed: frames/s of pose extraction at 640x480 and at 1080p, and where the time goes.

    python benchmarks/bench_extract.py [--seconds 10] [--json]

Makes two 30 frames/s clips of a real person (matplotlib's grace_hopper.jpg, moving across the
frame: tests/videos.py) at each size, `--seconds` long, in bench_out/extract (kept between runs).
Then, for each size:
- decoding alone (OpenCV, the decoding thread of `pose/video.py`), one process;
- `agcn extract` of ONE clip: one process, LiteRT on all cores (what a single video gets);
- `agcn extract` of TWO clips: one process a clip, one LiteRT thread each (all cores across videos);
each with an empty cache, the fastest of `--repeats`, tracking and writing the annotation file
included. The share of decoding, detector and landmark model time is read from the extraction's own
timers (`VideoPoses.seconds`; decoding runs on its own thread beside the models). The real-time
factor is frames/s over the clips' 30 frames/s.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agcn_cli.pose.video import Decoded, probe_video, video_frames  # noqa: E402
from agcn_cli.sources.extract import ExtractConfig, extract  # noqa: E402
from tests.videos import photo, place, write_video  # noqa: E402

SIZES = {"640x480": (480, 640), "1080p": (1080, 1920)}
FPS = 30


def make_clip(path: Path, size: tuple[int, int], frames: int, step: int) -> Path:
    if path.exists():
        return path
    img = photo()
    width = size[0] * 0.8 * 0.9 * img.shape[1] / img.shape[0]  # of the person, as `place` scales her
    span = int((size[1] - width) / 2 * 0.9)  # she walks to and fro across the frame
    swing = lambda k: abs((k * step) % (4 * span) - 2 * span) - span  # noqa: E731
    shots = [place(img, size, dx=swing(k), scale=0.8) for k in range(frames)]
    return write_video(path, shots, FPS)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def decode_fps(path: Path) -> float:
    info, decoded = probe_video(path), Decoded()
    t0 = time.perf_counter()
    for _ in video_frames(info, decoded):
        pass
    return decoded.frames / (time.perf_counter() - t0)


def extract_run(clips: list[Path], out: Path, workers: int) -> tuple[float, dict]:
    shutil.rmtree(out.parent, ignore_errors=True)
    t0 = time.perf_counter()
    report = extract(ExtractConfig(clips, out, workers=workers, overwrite=True))
    seconds = time.perf_counter() - t0
    frames = sum(o.poses.frames for o in report.done)
    parts: dict[str, float] = {}
    for o in report.done:
        for k, v in o.poses.seconds.items():
            parts[k] = parts.get(k, 0.0) + v
    return frames / seconds, {k: v / seconds / len(clips) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = ROOT / "bench_out" / "extract"
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(args.seconds * FPS)
    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "frames_per_clip": frames, "sizes": {}}
    for name, size in SIZES.items():
        clips = [make_clip(folder / f"{name}-{i}.mp4", size, frames, 4 + 2 * i) for i in range(2)]
        row = {"decode_fps": max(decode_fps(clips[0]) for _ in range(args.repeats))}
        for label, inputs, workers in (("one_video", clips[:1], 1), ("two_videos", clips, 2)):
            best = max((extract_run(inputs, folder / "runs" / "out.pkl", workers) for _ in range(args.repeats)),
                       key=lambda r: r[0])  # fmt: skip
            row[label] = {"fps": best[0], "realtime": best[0] / FPS, "share": best[1]}
        results["sizes"][name] = row
    shutil.rmtree(folder / "runs", ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['cpu']}, {results['cores']} cores; clips of {frames} frames at {FPS} frames/s")
    for name, row in results["sizes"].items():
        print(f"{name}: decoding alone {row['decode_fps']:.0f} frames/s")
        for label in ("one_video", "two_videos"):
            r = row[label]
            share = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["share"].items())
            print(f"  {label:10s} {r['fps']:6.1f} frames/s = {r['realtime']:.2f}x real time  (time in: {share})")


if __name__ == "__main__":
    main()
