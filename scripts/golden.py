"""Fingerprint every command's outputs on small synthetic data, through the CLI alone.

For refactors that must not change behaviour: run it on the code before and after, then
compare the two manifests (`diff`). It drives `python -m agcn_cli` only (no library imports),
so it works across any reorganisation of the package:

    python scripts/golden.py OUT_DIR > before.txt     # on the old commit
    python scripts/golden.py OUT_DIR2 > after.txt     # on the new one
    diff before.txt after.txt

Covered: synth; preprocess (both recipes, 1 and 2 workers), a 2D and a 3D `.pkl` import, a
Kinetics-Skeleton import; streams; a seeded `--deterministic` train of each model variant
(weights hashed tensor by tensor, metrics without their timing fields); eval (scores file,
confusion CSV, MMAction2 dump, JSON); fuse (given weights and --search); predict --json.
Files are hashed byte for byte; stdout JSON is hashed after dropping timing fields.
"""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

TIMING = {"seconds", "samples_per_s", "data_wait_s", "epoch_s", "wall_s", "device"}
# One intra-op thread: with two, the CPU kernels' inference results differ in the last bit from run
# to run (about one run in three, measured 2026-12-06 on a 2-core Xeon, old and new code alike),
# which would hide whether a change kept the outputs.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def agcn(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "agcn_cli", *map(str, args)], capture_output=True, text=True, env=ENV
    )
    if result.returncode != 0:
        sys.exit(f"agcn {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def agcn_error(root: Path, *args: str) -> str:
    """The stderr of a command that must fail (exit 1), paths under `root` written as ROOT."""
    result = subprocess.run(
        [sys.executable, "-m", "agcn_cli", *map(str, args)], capture_output=True, text=True, env=ENV
    )
    if result.returncode != 1:
        sys.exit(f"agcn {' '.join(map(str, args))} exited {result.returncode}, expected 1:\n{result.stderr}")
    return result.stderr.replace(str(root), "ROOT")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def drop_timing(value):
    if isinstance(value, dict):
        return {k: drop_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [drop_timing(v) for v in value]
    return value


def json_digest(text: str) -> str:
    return digest(json.dumps(drop_timing(json.loads(text)), sort_keys=True).encode())


def weights_digest(path: Path) -> str:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for key in sorted(ckpt["model"]):
        h.update(key.encode())
        h.update(ckpt["model"][key].numpy().tobytes())
    facts = {k: ckpt[k] for k in ("format", "version", "model_config", "data", "epoch")}
    h.update(json.dumps(facts, sort_keys=True).encode())
    return h.hexdigest()[:16]


def dump_digest(path: Path) -> str:
    """MMAction2 dumps by content: pickled torch tensors carry storage keys that change run to run."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        records = pickle.load(f)  # our own file, written just now
    for record in records:
        for key in sorted(record):
            value = record[key]
            h.update(key.encode())
            h.update(value.numpy().tobytes() if hasattr(value, "numpy") else repr(value).encode())
    return h.hexdigest()[:16]


def write_inputs(root: Path) -> None:
    """A 3D and a 2D MMAction2-style .pkl and a Kinetics-Skeleton folder, from a fixed generator."""
    rng = np.random.default_rng(7)
    names = [f"S001C00{c}P00{p}R001A00{a}" for c in (1, 2) for p in (1, 3) for a in (1, 2, 3)]
    split = {"xsub_train": [n for n in names if "P001" in n], "xsub_val": [n for n in names if "P003" in n]}
    anns3, anns2 = [], []
    for i, name in enumerate(names):
        t = 20 + i
        kp = (rng.normal(size=(2, t, 25, 3)) * 0.3 + [0, 0, 3]).astype(np.float16)
        anns3.append({"frame_dir": name, "label": int(name[-1]) - 1, "total_frames": t, "keypoint": kp})
        xy = rng.uniform(100, 1800, size=(1, t, 17, 2)).astype(np.float16)
        score = rng.uniform(0.1, 1, size=(1, t, 17)).astype(np.float16)
        anns2.append({"frame_dir": name, "label": int(name[-1]) - 1, "total_frames": t, "keypoint": xy,
                      "keypoint_score": score, "img_shape": (1080, 1920)})  # fmt: skip
    for fname, anns in (("ntu60_3d.pkl", anns3), ("ntu60_2d.pkl", anns2)):
        with open(root / fname, "wb") as f:
            pickle.dump({"split": split, "annotations": anns}, f, protocol=2)
    kin = root / "kinetics"
    for split_name in ("train", "val"):
        folder = kin / f"kinetics_{split_name}"
        folder.mkdir(parents=True)
        labels = {}
        for v in range(4):
            frames = [
                {"frame_index": t, "skeleton": [
                    {"pose": rng.random(36).round(3).tolist(), "score": rng.random(18).round(3).tolist()}
                    for _ in range(int(rng.integers(1, 4)))
                ]}
                for t in range(int(rng.integers(10, 30)))
            ]  # fmt: skip
            vid = f"{split_name}{v}"
            (folder / f"{vid}.json").write_text(json.dumps({"data": frames, "label": "x", "label_index": v % 3}))
            labels[vid] = {"has_skeleton": True, "label": "x", "label_index": v % 3}
        (kin / f"kinetics_{split_name}_label.json").write_text(json.dumps(labels))


def more_runs(out: Path, data: Path, runs: Path, common: list[str], results: dict[str, str]) -> None:
    """Two streams in one command and agcn eval RUN_DIR; the 2s-AGCN recipe's full window (training,
    eval, predict); a resumed run; fine-tuning; predict on a .pkl and a split file; error messages."""
    agcn("train", data, "--modality", "joint,bone-motion", "--out", runs / "together", "--dropout", "0.3", *common)
    for stream in ("joint", "bone-motion"):
        results[f"together {stream} last.pt weights"] = weights_digest(runs / "together" / stream / "last.pt")
    results["eval RUN_DIR json"] = json_digest(
        agcn(
            "eval",
            runs / "together",
            data / "test.h5",
            "--clips",
            "2",
            "--json",
            "--device",
            "cpu",
            "--out",
            out / "scores" / "together",
        )  # fmt: skip
    )
    full = out / "pre-2s-agcn-1"
    recipe = ["--sampling", "full", "--window", "60", "--schedule", "step", "--lr-steps", "1", "--drop-last"]
    for modality in ("joint", "bone-motion"):
        agcn("train", full, "--modality", modality, "--out", runs / f"full-{modality}", *common, *recipe)
        results[f"full-window {modality} last.pt weights"] = weights_digest(runs / f"full-{modality}" / "last.pt")
        results[f"full-window {modality} eval json"] = json_digest(
            agcn("eval", runs / f"full-{modality}" / "last.pt", full / "test.h5", "--json", "--device", "cpu")
        )
    skel = sorted((out / "raw").glob("*.skeleton"))[:2]
    text = agcn("predict", runs / "full-bone-motion" / "last.pt", *skel, full / "test.h5", "--json", "--device", "cpu")
    results["full-window predict json"] = json_digest(text.replace(str(out), "ROOT"))
    split = [*common[: common.index("--epochs")], *common[common.index("--epochs") + 2 :]]
    agcn("train", data, "--out", runs / "resumed", "--epochs", "2", "--stop-after", "1", *split)
    agcn("train", "--resume", "--out", runs / "resumed")
    results["resumed last.pt weights"] = weights_digest(runs / "resumed" / "last.pt")
    agcn("train", out / "pkl3d", "--out", runs / "tuned", "--init-from", runs / "joint" / "last.pt",
         "--freeze-epochs", "1", "--backbone-lr-mult", "0.1", *common)  # fmt: skip
    results["fine-tuned last.pt weights"] = weights_digest(runs / "tuned" / "last.pt")
    text = agcn("predict", runs / "tuned" / "last.pt", out / "ntu60_3d.pkl", out / "pkl3d" / "test.h5",
                "--json", "--device", "cpu")  # fmt: skip
    results["predict pkl and split json"] = json_digest(text.replace(str(out), "ROOT"))
    errors = {
        "eval swapped": ["eval", data / "test.h5", runs / "joint" / "last.pt"],
        "info folder": ["info", data],
        "train no batch": ["train", data, "--out", runs / "none", "--drop-last", "--batch-size", "512"],
        "resume other lr": ["train", "--resume", "--out", runs / "joint", "--lr", "0.3"],
        "preprocess missing": ["preprocess", out / "nope", out / "nope-out"],
        "streams unknown": ["streams", data / "train.h5", "--modality", "colour"],
        "fuse one file": ["fuse", out / "scores" / "joint" / "scores.h5", data / "test.h5"],
        "predict wrong layout": ["predict", runs / "joint" / "last.pt", out / "ntu60_2d.pkl", "--device", "cpu"],
    }
    for name, args in errors.items():
        results[f"error {name}"] = digest(agcn_error(out, *args).encode())


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if out.exists():
        sys.exit(f"{out} exists; give a new folder")
    out.mkdir(parents=True)
    raw = out / "raw"
    agcn("synth", raw, "--classes", "1,2,3,50", "--samples-per-class", "12", "--seed", "3")
    results: dict[str, str] = {}
    for recipe in ("mmaction2", "2s-agcn"):
        for workers in ("1", "2"):
            d = out / f"pre-{recipe}-{workers}"
            results[f"preprocess {recipe} -j{workers} json"] = json_digest(
                agcn("preprocess", raw, d, "--recipe", recipe, "--workers", workers, "--json")
            )
    write_inputs(out)
    for name, args in {
        "pkl3d": [out / "ntu60_3d.pkl", out / "pkl3d"],
        "pkl2d": [out / "ntu60_2d.pkl", out / "pkl2d"],
        "kinetics": [out / "kinetics", out / "kin", "--num-classes", "3"],
    }.items():
        results[f"import {name} json"] = json_digest(agcn("preprocess", *args, "--json"))
    data = out / "pre-mmaction2-1"
    for split in ("train", "test"):
        agcn("streams", data / f"{split}.h5")
        results[f"info {split} json"] = json_digest(agcn("info", data / f"{split}.h5", "--json"))
    agcn("streams", out / "pkl2d" / "train.h5", "--modality", "bone")
    runs = out / "runs"
    common = ["--clip-len", "12", "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--no-auto-scale-lr",
              "--val-every", "1", "--deterministic", "--device", "cpu", "--seed", "1"]  # fmt: skip
    for modality, variant in (("joint", "mmaction2"), ("bone", "2s-agcn"), ("joint-motion", "mmaction2")):
        agcn("train", data, "--modality", modality, "--variant", variant, "--out", runs / modality, *common)
        rows = [drop_timing(json.loads(r)) for r in (runs / modality / "metrics.jsonl").read_text().splitlines()]
        results[f"train {modality} metrics"] = digest(json.dumps(rows, sort_keys=True).encode())
        results[f"train {modality} last.pt weights"] = weights_digest(runs / modality / "last.pt")
        results[f"train {modality} best.pt weights"] = weights_digest(runs / modality / "best.pt")
    scores = out / "scores"
    for modality in ("joint", "bone", "joint-motion"):
        s = scores / modality
        text = agcn("eval", runs / modality / "last.pt", data / "test.h5", "--clips", "3", "--out", s / "scores.h5",
                    "--confusion", s / "cm.csv", "--mmaction-dump", s / "dump.pkl", "--json",
                    "--device", "cpu")  # fmt: skip
        results[f"eval {modality} json"] = json_digest(text)
    text = agcn("fuse", scores / "joint/scores.h5", scores / "bone/scores.h5", "--weights", "2,1",
                "--out", out / "fused.h5", "--json")  # fmt: skip
    results["fuse json"] = json_digest(text)
    text = agcn("fuse", scores / "joint/scores.h5", scores / "bone/scores.h5", scores / "joint-motion/scores.h5",
                "--search", "--json")  # fmt: skip
    results["fuse search json"] = json_digest(text)
    skel = sorted(raw.glob("*.skeleton"))[:3]
    text = agcn("predict", runs / "joint" / "last.pt", *skel, "-c", runs / "bone" / "last.pt", "--weights", "1,2",
                "--clips", "2", "--json", "--device", "cpu")  # fmt: skip
    results["predict json"] = json_digest(text.replace(str(raw), "RAW"))
    more_runs(out, data, runs, common, results)
    for path in sorted(runs.rglob("config.json")):  # without the run's records (time, host, commit)
        saved = json.loads(path.read_text())
        for key in ("environment", "resumes", "init_source"):
            saved.pop(key, None)
        results[f"config {path.relative_to(out)}"] = digest(json.dumps(saved, sort_keys=True).encode())
    for path in sorted(out.rglob("*")):
        if path.name == "config.json":
            continue  # above, without its records
        if path.is_file() and path.suffix in (".h5", ".csv", ".pkl", ".skeleton", ".json") and "raw" not in path.parts:
            if path.parent.name.startswith("kinetics") or path.name.startswith("ntu60_"):
                continue  # the inputs written above
            key = f"file {path.relative_to(out)}"
            results[key] = dump_digest(path) if path.name == "dump.pkl" else digest(path.read_bytes())
    results["raw files"] = digest(b"".join(p.read_bytes() for p in sorted(raw.glob("*.skeleton"))))
    for key in sorted(results):
        print(f"{key}: {results[key]}")


if __name__ == "__main__":
    main()
