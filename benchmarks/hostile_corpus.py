"""Hostile input corpus (issue 15): valid synthetic data, then hostile variants, each run as a subprocess.

    .venv/bin/python benchmarks/hostile_corpus.py [--out DIR] [--json] [--timeout 60] [--max-mem-mib 3072]

Builds a small valid data set in a temporary folder (`agcn synth`, `preprocess`, a 1-epoch `train`,
`eval --out`), derives hostile files from it (split files edited with h5py, checkpoints re-saved with
torch.save, TOML/JSON configs, NTU names, .skeleton text, pickles, Kinetics JSON, layouts, score files,
folders and links) and runs one agcn command per case. Per case it records the exit code, whether a
traceback appeared, the first stderr line, the wall time and the child's peak RSS (`os.wait4`).

A case is clean when it ran within the time and memory limits, printed no traceback and either
- expects an error: exit != 0 and exactly one `error:` line on stderr that names the file, or
- expects acceptance (documented exit 0, e.g. a bad file skipped without --strict): exit 0 and, where
  the case says so, the skipped file is named in the output.
Prints a markdown table and a summary line; exits 1 when any case is not clean.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import DeclaredArray, del_attr, replace, set_attr, set_values  # noqa: E402

AGCN = [sys.executable, "-c", "import sys; from agcn_cli.cli import main; sys.exit(main())"]
ENV = {
    **os.environ,
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
    "COLUMNS": "400",
    "NO_COLOR": "1",
    "PYTHONWARNINGS": "default",
}
TRAIN = ["--epochs", "1", "--clip-len", "16", "--batch-size", "4", "--device", "cpu", "--workers", "0"]
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass
class Case:
    cls: str  # the issue's class
    name: str
    argv: list[str]
    names: str  # a substring the error (or warning) must hold: the file
    expect: str = "error"  # "error" | "ok" | "interrupted" (exit 130 after a SIGINT, the resume hint)
    check: Callable[[], str] | None = None  # after the run: "" or what went wrong
    sigint_after: float | None = None  # seconds after the start to send SIGINT (expect "interrupted")


@dataclass
class Result:
    cls: str
    name: str
    exit: int
    traceback: bool
    first_stderr: str
    wall_s: float
    peak_mib: float
    clean: bool
    why: str = ""
    argv: list[str] = field(default_factory=list)


def run_child(
    argv: list[str], cwd: Path, timeout: float, sigint_after: float | None = None
) -> tuple[int, str, str, float, float, bool]:
    """Run `argv` (SIGINT after `sigint_after` s); return (exit, stdout, stderr, wall s, peak RSS MiB, timed out)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=out, stderr=err, start_new_session=True)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if sigint_after is not None and time.perf_counter() - t0 > sigint_after:
            os.kill(proc.pid, signal.SIGINT)
            sigint_after = None
        if time.perf_counter() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            timed_out = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    out.seek(0), err.seek(0)
    text_out = out.read().decode("utf-8", "replace")
    text_err = err.read().decode("utf-8", "replace")
    return proc.returncode, text_out, text_err, wall, usage.ru_maxrss / 1024, timed_out


def judge(case: Case, code: int, out: str, err: str, wall: float, mib: float, timed_out: bool, limits) -> str:
    """'' when clean, else why not."""
    if timed_out:
        return f"timed out after {limits.timeout:.0f} s"
    if mib > limits.max_mem_mib:
        return f"peak {mib:.0f} MiB over {limits.max_mem_mib} MiB"
    if "Traceback" in err or "Traceback" in out:
        return "traceback"
    if case.expect == "ok":
        if code != 0:
            return f"exit {code}, expected 0"
        if case.names and case.names not in out + err:
            return f"output does not name {case.names!r}"
    elif case.expect == "interrupted":
        if code != 130:
            return f"exit {code}, expected 130 (SIGINT)"
        if "continue with: agcn train --resume" not in err or case.names not in err:
            return f"no resume hint naming {case.names!r}"
    else:
        if code == 0:
            return "exit 0 on hostile input"
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if len(errors) != 1:
            return f"{len(errors)} 'error:' lines on stderr"
        if case.names not in errors[0]:
            return f"error line does not name {case.names!r}"
    if case.check is not None:
        return case.check()
    return ""


# ---- building the corpus -----------------------------------------------------------------------------


def agcn(cwd: Path, *args: str) -> None:
    code, out, err, *_ = run_child([*AGCN, *args], cwd, 600)
    if code != 0:
        raise SystemExit(f"setup failed: agcn {' '.join(args)}\n{out}\n{err}")


def build_valid(d: Path) -> None:
    agcn(d, "synth", "raw", "--classes", "1,2,3", "--samples-per-class", "2", "--subjects", "1,3", "--max-frames", "40")
    agcn(d, "preprocess", "raw", "data", "-j", "1")
    agcn(d, "train", "data/train.h5", "-o", "run", "--num-classes", "60", *TRAIN)
    agcn(d, "eval", "run/last.pt", "data/test.h5", "--out", "scores.h5", "--device", "cpu", "--clip-len", "16")


def split_variant(d: Path, name: str, edit: Callable[[h5py.File], object], src: str = "data/train.h5") -> str:
    path = d / "splits" / f"{name}.h5"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(d / src, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return str(path.relative_to(d))


def ckpt_variant(d: Path, name: str, edit: Callable[[dict], object]) -> str:
    raw = torch.load(d / "run" / "last.pt", weights_only=True, map_location="cpu")
    edit(raw)
    path = d / "ckpts" / f"{name}.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(raw, path)
    return str(path.relative_to(d))


def write(d: Path, rel: str, data: str | bytes) -> str:
    path = d / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return rel


def valid_skeleton(d: Path) -> str:
    return sorted((d / "raw").iterdir())[0].read_text()


def raw_folder(d: Path, name: str, files: dict[str, str | bytes], with_valid: bool = True) -> str:
    """A folder holding one valid train and one valid test file plus `files`."""
    folder = d / "rawcases" / name
    folder.mkdir(parents=True)
    if with_valid:
        for src in sorted((d / "raw").iterdir()):
            if "P001" in src.name or "P003" in src.name:
                shutil.copy(src, folder / src.name)
    for fname, text in files.items():
        (folder / fname).write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(folder.relative_to(d))


def annotation_pickle(keypoint, total_frames: int) -> bytes:
    ann = {"frame_dir": "S001C001P001R001A001", "label": 0, "total_frames": total_frames, "keypoint": keypoint}
    return pickle.dumps({"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": [ann]}, 2)


def kinetics_folder(d: Path, name: str, files: dict[str, int], deep: str = "") -> str:
    root = d / "kin" / name
    folder = root / "kinetics_val"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {}
    for fname, label in files.items():
        frames = [
            {"frame_index": t + 1, "skeleton": [{"pose": rng.uniform(0, 1, 36).tolist(), "score": [0.9] * 18}]}
            for t in range(5)
        ]
        text = json.dumps({"data": frames, "label": "x", "label_index": label})
        (folder / fname).write_text(deep or text)
        labels[fname.split(".")[0]] = {"has_skeleton": True, "label": "x", "label_index": label}
    (root / "kinetics_val_label.json").write_text(json.dumps(labels))
    return str(folder.relative_to(d))


def cases(d: Path) -> list[Case]:  # noqa: PLR0915 - one flat list reads best
    c: list[Case] = []
    cpu = ["--device", "cpu"]

    # ---- 1. wrong types and sizes in split files (info, eval, train, streams) -----------------------
    split_edits = {
        "schema_version text": set_attr("schema_version", "one"),
        "schema_version float": set_attr("schema_version", 1.5),
        "num_classes text": set_attr("num_classes", "many"),
        "num_classes zero": set_attr("num_classes", 0),
        "num_classes array": set_attr("num_classes", np.array([3, 4])),
        "num_samples missing": del_attr("num_samples"),
        "num_samples too many": set_attr("num_samples", 99),
        "layout unknown": set_attr("layout", "ntu26"),
        "layout_spec bad json": set_attr("layout_spec", "{not json"),
        "label_names not a list": set_attr("label_names", "[1, 2"),
        "name integers": replace("name", lambda old: np.arange(len(old))),
        "label floats": replace("label", lambda old: old.astype(np.float32) + 0.5),
        "label minus one": set_values("label", 0, -1),
        "label uint64 huge": replace("label", lambda old: np.full(len(old), 2**63 + 5, np.uint64)),
        "label a group": lambda f: (f.__delitem__("label"), f.create_group("label")),
        "joint 24 joints": replace("joint", lambda old: old[:, :, :24]),
        "joint 2 channels": replace("joint", lambda old: old[..., :2]),
        "offset negative": set_values("offset", 1, -5),
        "offset past the end": set_values("offset", 1, 10_000_000),
        "num_frames past the end": lambda f: f["num_frames"].__setitem__(-1, f["num_frames"][-1] + 100),
        "num_frames zero": set_values("num_frames", 0, 0),
        "num_frames huge": replace("num_frames", lambda old: np.full(len(old), 2**62, np.int64)),
    }
    for i, (name, edit) in enumerate(split_edits.items()):
        path = split_variant(d, f"s{i}", edit)
        c.append(Case("split file: info", name, ["info", path], path))
    for i, name in enumerate(["num_classes text", "name integers", "label minus one", "joint 24 joints",
                              "offset past the end", "num_frames huge"]):  # fmt: skip
        path = split_variant(d, f"e{i}", split_edits[name])
        c.append(Case("split file: eval", name, ["eval", "run/last.pt", path, *cpu, "--clip-len", "16"], path))
    for i, name in enumerate(["label minus one", "num_samples missing", "joint 2 channels"]):
        path = split_variant(d, f"t{i}", split_edits[name])
        c.append(Case("split file: train", name, ["train", path, "-o", f"runs/t{i}", *TRAIN], path))
    for i, name in enumerate(["schema_version text", "offset negative"]):
        path = split_variant(d, f"st{i}", split_edits[name])
        c.append(Case("split file: streams", name, ["streams", path], path))
    path = split_variant(d, "lay", set_attr("layout", "ntu99"))
    c.append(Case("split file: streams", "unknown layout", ["streams", path], path))
    c.append(Case("split file: info", "not HDF5", ["info", write(d, "junk/x.h5", b"\x00garbage" * 50)], "x.h5"))
    c.append(Case("split file: info", "empty file", ["info", write(d, "junk/empty.h5", b"")], "empty.h5"))
    (d / "junk" / "dir.h5").mkdir()
    c.append(Case("split file: info", "a folder", ["info", "junk/dir.h5"], "dir.h5"))

    # ---- 2. bad checkpoints ---------------------------------------------------------------------------
    ckpt_edits = {
        "model_config missing": lambda k: k.pop("model_config"),
        "model missing": lambda k: k.pop("model"),
        "model a list": lambda k: k.__setitem__("model", [1, 2]),
        "num_classes text": lambda k: k["model_config"].__setitem__("num_classes", "many"),
        "num_classes zero": lambda k: k["model_config"].__setitem__("num_classes", 0),
        "num_classes bool": lambda k: k["model_config"].__setitem__("num_classes", True),
        "epoch text": lambda k: k.__setitem__("epoch", "five"),
        "clip_len text": lambda k: k["data"].__setitem__("clip_len", "100"),
        "modality unknown": lambda k: k["data"].__setitem__("modality", "colour"),
        "unknown model_config field": lambda k: k["model_config"].__setitem__("depth", 10),
        "weight wrong shape": lambda k: k["model"].__setitem__("fc.weight", torch.zeros(2, 2)),
    }
    for i, (name, edit) in enumerate(ckpt_edits.items()):
        path = ckpt_variant(d, f"c{i}", edit)
        c.append(Case("checkpoint: eval", name, ["eval", path, "data/test.h5", *cpu], path))
    path = ckpt_variant(d, "p0", ckpt_edits["model_config missing"])
    c.append(Case("checkpoint: predict", "model_config missing", ["predict", path, "data/test.h5", *cpu], path))
    path = ckpt_variant(d, "p1", ckpt_edits["num_classes text"])
    c.append(Case("checkpoint: export", "num_classes text", ["export", path, "m.pt", "-f", "torchscript"], path))
    torch.save([1, 2, 3], d / "ckpts" / "list.pt")
    c.append(Case("checkpoint: eval", "a list, not a dict", ["eval", "ckpts/list.pt", "data/test.h5", *cpu], "list.pt"))
    junk = write(d, "ckpts/junk.pt", os.urandom(2048))
    c.append(Case("checkpoint: eval", "random bytes", ["eval", junk, "data/test.h5", *cpu], "junk.pt"))
    empty = write(d, "ckpts/empty.pt", b"")
    c.append(Case("checkpoint: eval", "empty file", ["eval", empty, "data/test.h5", *cpu], "empty.pt"))
    evil = write(d, "ckpts/evil.pt", b"cos\nsystem\n(S'echo pwned'\ntR.")
    c.append(Case("checkpoint: eval", "pickle calling os.system", ["eval", evil, "data/test.h5", *cpu], "evil.pt"))

    # ---- 3. config values of the wrong type (TOML / JSON) ---------------------------------------------
    configs = {
        "epochs text": 'epochs = "five"\n',
        "batch_size float": "batch_size = 2.0\n",
        "clip_len negative": "clip_len = -1\n",
        "lr text": 'lr = "fast"\n',
        "lr nan": "lr = nan\n",
        "unknown key": "colour = 3\n",
        "epochs huge": "epochs = 9223372036854775807\n",
        "not TOML": "epochs = = 1\n[[[\n",
        "lr_steps a table": "[lr_steps]\na = 1\n",
    }
    for i, (name, text) in enumerate(configs.items()):
        path = write(d, f"cfg/c{i}.toml", text)
        c.append(Case("config", name, ["train", "data/train.h5", "-o", f"runs/c{i}", "--config", path], path))
    path = write(d, "cfg/deep.json", DEEP)
    c.append(
        Case("config", "JSON nested 100,000 deep", ["train", "data/train.h5", "-o", "runs/cd", "--config", path], path)
    )
    path = write(d, "cfg/binary.toml", os.urandom(512))
    c.append(Case("config", "binary bytes", ["train", "data/train.h5", "-o", "runs/cb", "--config", path], path))
    c.append(
        Case(
            "options",
            "clip-len 10^8",
            ["train", "data/train.h5", "-o", "runs/o1", "--clip-len", "100000000"],
            "clip_len",
        )
    )
    c.append(Case("options", "lr inf", ["train", "data/train.h5", "-o", "runs/o2", "--lr", "inf"], "lr"))

    # ---- 4. NTU names, huge coordinates, malformed .skeleton files ------------------------------------
    good = valid_skeleton(d)
    lines = good.splitlines()
    names = {
        "action A000": "S001C001P001R001A000.skeleton",
        "Unicode digits": "S001C001P001R001A\u0661\u0662.skeleton",
        "trailing newline": "S001C001P001R001A004\n.skeleton",
        "action A999": "S001C001P001R001A999.skeleton",
    }
    for i, (name, fname) in enumerate(names.items()):
        folder = raw_folder(d, f"n{i}", {fname: good})
        shown = fname.split(".")[0].strip()
        c.append(Case("NTU names", name + " --strict", ["preprocess", folder, f"outs/n{i}", "--strict"], shown))
        c.append(Case("NTU names", name + " (skipped)", ["preprocess", folder, f"outs/n{i}b"], shown, expect="ok"))

    def body_id_huge():
        out = list(lines)
        out[2] = "18446744073709551616" + out[2][out[2].index(" ") :]
        return "\n".join(out) + "\n"

    def coordinate(value: str):
        out = list(lines)
        fields = out[4].split()
        fields[0] = value
        out[4] = " ".join(fields)
        return "\n".join(out) + "\n"

    bad_skeletons = {
        "truncated": "\n".join(lines[:6]) + "\n",
        "cut mid-line": good[: len(good) // 2],
        "text in numbers": good.replace("0.", "x.", 3),
        "empty": "",
        "zero frames": "0\n",
        "frame count 10^12": "1000000000000\n",
        "body id beyond int64": body_id_huge(),
        "coordinate 1e30": coordinate("1e30"),
        "coordinate inf": coordinate("inf"),
        "coordinate nan": coordinate("nan"),
        "binary bytes": os.urandom(4096),
        "UTF-16 text": good.encode("utf-16"),
    }
    for i, (name, text) in enumerate(bad_skeletons.items()):
        fname = "S001C001P001R001A005.skeleton"
        folder = raw_folder(d, f"k{i}", {fname: text})
        c.append(Case(".skeleton", name + " --strict", ["preprocess", folder, f"outs/k{i}", "--strict"], fname))
    for name in ("coordinate 1e30", "truncated", "zero frames"):
        path = write(d, f"pred/{name.replace(' ', '_')}/S001C001P001R001A001.skeleton", bad_skeletons[name])
        c.append(Case(".skeleton: predict", name, ["predict", "run/last.pt", path, *cpu], "S001C001P001R001A001"))
    folder = raw_folder(d, "loop", {})
    loop = d / folder / "S001C001P001R001A006.skeleton"
    loop.symlink_to(d / folder / "S001C001P001R001A007.skeleton")
    (d / folder / "S001C001P001R001A007.skeleton").symlink_to(loop)
    c.append(Case("folders", "symlink loop (skipped)", ["preprocess", folder, "outs/loop"], loop.name, expect="ok"))
    c.append(Case("folders", "symlink loop --strict", ["preprocess", folder, "outs/loop2", "--strict"], "A00"))
    c.append(Case("folders", "missing folder", ["preprocess", "nowhere", "outs/x"], "nowhere"))
    c.append(Case("folders", "empty folder", ["preprocess", raw_folder(d, "empty", {}, False), "outs/e"], "empty"))
    write(d, "outs/afile", "x")
    c.append(Case("folders", "out_dir is a file", ["preprocess", "raw", "outs/afile"], "afile"))

    # every file bad, --overwrite over a good output: refused, the good output kept
    folder = raw_folder(d, "allbad", {})
    agcn(d, "preprocess", folder, "outs/allbad", "-j", "1")
    before = {p.name: p.read_bytes() for p in (d / "outs" / "allbad").glob("*.h5")}
    for p in (d / folder).iterdir():
        p.write_text("garbage\n")

    def kept() -> str:
        now = {p.name: p.read_bytes() for p in (d / "outs" / "allbad").iterdir()}
        return "" if now == before else "the good earlier output was changed"

    c.append(
        Case(
            "every file bad",
            "--overwrite over good output",
            ["preprocess", folder, "outs/allbad", "--overwrite"],
            "train.h5",
            check=kept,
        )
    )

    # ---- 5. pickles --------------------------------------------------------------------------------------
    pk = ["--split-names", "xsub_train", "--num-classes", "3"]
    pickles = {
        "declares (1, 10^6, 25, 3), no data": annotation_pickle(DeclaredArray((1, 10**6, 25, 3)), 10**6),
        "declares (1, 10^7, 25, 3), no data": annotation_pickle(DeclaredArray((1, 10**7, 25, 3)), 10**7),
        "cut inside a length field": annotation_pickle(np.zeros((1, 8, 25, 3), np.float32), 8)[:40],
        "cut in half": annotation_pickle(np.zeros((1, 8, 25, 3), np.float32), 8)[:300],
        "list nested 100,000 deep": b"(" * 100_000 + b"l" * 100_000 + b".",
        "bytearray(10^10) from a size": b"c__builtin__\nbytearray\n(I10000000000\ntR.",
        "calls os.system": b"cos\nsystem\n(S'echo pwned'\ntR.",
        "not a dict": pickle.dumps([1, 2, 3]),
        "random bytes": os.urandom(1000),
        "keypoint a string": annotation_pickle("abc", 8),
        "total_frames negative": annotation_pickle(np.zeros((1, 8, 25, 3), np.float32), -8),
        "keypoint NaN": annotation_pickle(np.full((1, 8, 25, 3), np.nan, np.float32), 8),
    }
    for i, (name, data) in enumerate(pickles.items()):
        path = write(d, f"pkl/p{i}.pkl", data)
        c.append(Case("pickle", name, ["preprocess", path, f"outs/p{i}", *pk, "--strict"], f"p{i}.pkl"))

    # ---- 6. Kinetics JSON ----------------------------------------------------------------------------
    folder = kinetics_folder(d, "dup", {"aaa.json": 1, "aaa.v2.json": 1, "bbb.json": 2})
    c.append(
        Case("Kinetics", "duplicate video id (skipped)", ["preprocess", folder, "outs/kd"], "aaa.v2.json", expect="ok")
    )
    c.append(
        Case("Kinetics", "duplicate video id --strict", ["preprocess", folder, "outs/kd2", "--strict"], "aaa.v2.json")
    )
    folder = kinetics_folder(d, "deep", {"ccc.json": 1}, deep='{"data": ' + DEEP + "}")
    c.append(
        Case("Kinetics", "JSON nested 100,000 deep --strict", ["preprocess", folder, "outs/kj", "--strict"], "ccc.json")
    )
    folder = kinetics_folder(d, "notjson", {"ddd.json": 1}, deep="{not json")
    c.append(Case("Kinetics", "not JSON --strict", ["preprocess", folder, "outs/kn", "--strict"], "ddd.json"))

    # ---- 7. label maps and layouts -------------------------------------------------------------------
    label_maps = {
        "ANSI escape": "\x1b[31mred\x1b[0m\nb\nc\n",
        "NUL byte": "a\x00b\nb\nc\n",
        "carriage returns": "a\rb\nb\nc\n",
        "not UTF-8": b"\xff\xfe\xfa\nb\nc\n",
        "duplicate names": "a\na\na\n",
    }
    for i, (name, text) in enumerate(label_maps.items()):
        path = write(d, f"labels/l{i}.txt", text)
        argv = ["preprocess", "raw", f"outs/l{i}", "--label-map", path]
        c.append(Case("label map", name, argv, f"l{i}.txt"))
    from agcn_cli.skeleton.layouts import get_layout

    raw = get_layout("coco17").to_dict()
    raw["name"] = "cyclic"
    bones = [list(b) for b in raw["bones"]]
    bones[1], bones[2] = [1, 2], [2, 1]
    raw["bones"] = bones
    layouts = {
        "bones form a cycle": json.dumps(raw),
        "JSON nested 100,000 deep": DEEP,
        "not JSON": "{",
        "joint count a string": json.dumps({**raw, "joint_names": "abc"}),
        "edge to joint 10^9": json.dumps({**raw, "graphs": {"g": [[0, 10**9]]}}),
    }
    for i, (name, text) in enumerate(layouts.items()):
        path = write(d, f"layouts/y{i}.json", text)
        c.append(Case("layout file", name, ["model-info", "--layout", path], f"y{i}.json"))

    # ---- 8. scores and fuse ----------------------------------------------------------------------------
    for i in range(10):
        shutil.copy(d / "scores.h5", d / f"sc{i}.h5")
    c.append(Case("fuse", "--search over 9 files", ["fuse", *[f"sc{i}.h5" for i in range(9)], "--search"], "--grid"))
    c.append(Case("fuse", "--search over 10 files", ["fuse", *[f"sc{i}.h5" for i in range(10)], "--search"], "--grid"))
    c.append(
        Case(
            "fuse",
            "--search, 9 files, grid 0,1",
            ["fuse", *[f"sc{i}.h5" for i in range(9)], "--search", "--grid", "0,1"],
            "",
            expect="ok",
        )
    )

    def poison(f):
        for key in f:
            if isinstance(f[key], h5py.Dataset) and f[key].dtype.kind == "f" and f[key].size:
                f[key][...] = np.nan

    path = split_variant(d, "nanscores", poison, src="scores.h5")
    c.append(Case("fuse", "NaN score file", ["fuse", "scores.h5", path], path))
    c.append(Case("fuse", "a split file as scores", ["fuse", "scores.h5", "data/test.h5"], "test.h5"))
    c.append(Case("fuse", "weights text", ["fuse", "scores.h5", "sc1.h5", "--weights", "a,b"], "weights"))
    c.append(Case("fuse", "grid nan", ["fuse", "sc0.h5", "sc1.h5", "--search", "--grid", "nan,1"], "grid"))

    # NaN joints in a split: eval refuses, writes no scores
    def nan_joints(f):
        f["joint"][0] = np.nan

    path = split_variant(d, "nanjoint", nan_joints, src="data/test.h5")
    c.append(Case("NaN joints", "eval --out", ["eval", "run/last.pt", path, *cpu, "--out", "nan_scores.h5"], path,
                  check=lambda: "scores written" if (d / "nan_scores.h5").exists() else ""))  # fmt: skip
    path = split_variant(d, "nanjoint2", nan_joints, src="data/train.h5")
    c.append(Case("NaN joints", "train", ["train", path, "-o", "runs/nan", *TRAIN], path))
    path = split_variant(d, "infjoint", lambda f: f["joint"].__setitem__(0, 1e30), src="data/test.h5")
    c.append(Case("NaN joints", "1e30 joints, predict", ["predict", "run/last.pt", path, *cpu], path))

    # ---- 9. outputs onto folders and others ------------------------------------------------------------
    (d / "adir").mkdir()
    c.append(Case("outputs", "export onto a folder", ["export", "run/last.pt", "adir", "-f", "torchscript"], "adir"))
    c.append(
        Case(
            "outputs",
            "export onto a folder --overwrite",
            ["export", "run/last.pt", "adir", "-f", "torchscript", "--overwrite"],
            "adir",
        )
    )
    c.append(
        Case("outputs", "eval --out a folder", ["eval", "run/last.pt", "data/test.h5", *cpu, "--out", "adir"], "adir")
    )
    c.append(Case("outputs", "fuse --out a folder", ["fuse", "scores.h5", "sc1.h5", "--out", "adir"], "adir"))
    c.append(Case("outputs", "export unknown format", ["export", "run/last.pt", "m.xyz", "-f", "xyz"], "xyz"))
    c.append(
        Case("outputs", "train -o onto a file", ["train", "data/train.h5", "-o", "scores.h5", *TRAIN], "scores.h5")
    )
    c.append(Case("outputs", "eval: arguments swapped", ["eval", "data/test.h5", "run/last.pt", *cpu], "last.pt"))
    c.append(
        Case("outputs", "streams unknown modality", ["streams", "data/train.h5", "--modality", "colour"], "colour")
    )

    # ---- 10. several streams in one command (--modality all, agcn eval RUN_DIR) ------------------------
    (d / "emptyrun").mkdir()
    together = [
        ("a stream named twice", ["train", "data/train.h5", "-o", "runs/m1", "--modality", "joint,joint"], "joint"),
        ("an unknown stream in the list", ["train", "data/train.h5", "-o", "runs/m2", "--modality", "joint,hand"],
         "hand"),
        ("all into a single-stream run", ["train", "data/train.h5", "-o", "run", "--modality", "all", *TRAIN],
         "run"),
        ("--resume with nothing to resume", ["train", "data/train.h5", "-o", "runs/m3", "--modality", "all",
                                             "--resume", *TRAIN], "runs/m3"),
        ("eval RUN_DIR of no streams", ["eval", "emptyrun", "data/test.h5", *cpu], "emptyrun"),
        ("eval RUN_DIR with --confusion", ["eval", "emptyrun", "data/test.h5", *cpu, "--confusion", "c.csv"],
         "emptyrun"),
    ]  # fmt: skip
    c.extend(Case("streams together", name, argv, names) for name, argv, names in together)
    c += issue23_cases(d, cpu)
    return c


def issue23_cases(d: Path, cpu: list[str]) -> list[Case]:  # noqa: PLR0915 - one flat list reads best
    """Issue 23's classes: empty epochs, signals in validation, run-folder lookalikes, the new formats."""
    from tests.helpers import write_split

    c: list[Case] = []
    # ---- 11. an epoch of no batch: refused before the run folder is made --------------------------
    for name, schedule in (("step schedule", ["--schedule", "step", "--lr-steps", "1"]), ("cosine", [])):
        out = d / "runs" / f"empty-{name.split()[0]}"
        argv = ["train", "data/train.h5", "-o", str(out.relative_to(d)), *TRAIN, "--drop-last", "--batch-size",
                "64", *schedule]  # fmt: skip
        c.append(Case("empty epochs", f"--drop-last, batch 64, {name}", argv, "train.h5",
                      check=lambda out=out: "run folder made" if out.exists() else ""))  # fmt: skip
    stale = d / "runs" / "stale"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    (stale / "train.log").write_text("error: non-finite training loss\n")
    c.append(Case("empty epochs", "rerun into a folder a failed start left", ["train", "data/train.h5", "-o",
                  "runs/stale", *TRAIN], "", expect="ok",
                  check=lambda: "" if (stale / "last.pt").is_file() else "no last.pt"))  # fmt: skip

    # ---- 12. signals: SIGINT while validating (a validation split of 2,000 samples) --------------
    write_split(d / "bigval.h5", tuple([48] * 2000))
    sig = d / "runs" / "sigval"

    def saved_before_validation() -> str:
        ckpt = torch.load(sig / "last.pt", weights_only=True, map_location="cpu")
        part = ckpt.get("partial") or {}
        return "" if part.get("step") == 1 else f"last.pt partial {part}, expected the epoch's 1 batch"

    argv = ["train", "data/train.h5", "-o", "runs/sigval", "--val", "bigval.h5", "--num-classes", "60", *TRAIN,
            "--val-batch-size", "8"]  # fmt: skip
    c.append(Case("signals", "SIGINT in validation", argv, "runs/sigval", expect="interrupted", sigint_after=8.0,
                  check=saved_before_validation))  # fmt: skip

    def validated() -> str:
        return "" if (sig / "metrics.jsonl").read_text().count("val_top1") == 1 else "no validated row"

    c.append(Case("signals", "--resume after it validates", ["train", "--resume", "-o", "runs/sigval"], "",
                  expect="ok", check=validated))  # fmt: skip

    # ---- 13. run-folder lookalikes ----------------------------------------------------------------
    for sub in ("a/joint", "b/joint"):
        shutil.copytree(d / "run", d / "lookalike" / sub)
    c.append(Case("run folders", "plot a folder of runs named joint", ["plot", "lookalike", "--out", "p.png"],
                  "", expect="ok", check=lambda: "" if (d / "p.png").is_file() else "no picture"))  # fmt: skip
    c.append(Case("run folders", "eval a folder of runs", ["eval", "lookalike", "data/test.h5", *cpu], "lookalike"))
    c.append(Case("run folders", "eval --checkpoint best without best.pt",
                  ["eval", "lookalike/a/joint", "data/test.h5", *cpu, "--checkpoint", "best"], "best"))  # fmt: skip
    c.append(Case("run folders", "--resume --epochs 3 extends a finished run", ["train", "--resume", "-o", "run",
                  "--epochs", "3"], "the run was planned for 1 epochs", expect="ok"))  # fmt: skip

    # ---- 14. the new formats and messages ---------------------------------------------------------
    names = ["S001C001P001R001A001.skeleton", "S001C001P002R001A002.skeleton"]
    joint = np.zeros((2, 3, 300, 25, 2), np.float32)
    npy_cases = {
        "labels fewer than samples": (joint, (names[:1], [0])),
        "label pickle not a pair": (joint, {"names": names}),
        "array of 4 dimensions": (joint[..., 0], (names, [0, 1])),
        "label out of range": (joint, (names, [0, 99])),
        "truncated array": (b"\x93NUMPY" + b"\x00" * 40, (names, [0, 1])),
    }
    for i, (name, (array, labels)) in enumerate(npy_cases.items()):
        folder = d / "npy" / f"n{i}"
        folder.mkdir(parents=True)
        if isinstance(array, bytes):
            (folder / "train_data_joint.npy").write_bytes(array)
        else:
            np.save(folder / "train_data_joint.npy", array)
        (folder / "train_label.pkl").write_bytes(pickle.dumps(labels))
        argv = ["preprocess", f"npy/n{i}", f"outs/n{i}", "--benchmark", "ntu60-xsub"]
        c.append(Case("new formats", f"npy: {name}", argv, f"npy/n{i}"))
    folder = d / "npy" / "bone"
    folder.mkdir(parents=True)
    np.save(folder / "train_data_joint.npy", joint)
    np.save(folder / "train_data_bone.npy", joint[:1])
    (folder / "train_label.pkl").write_bytes(pickle.dumps((names, [0, 1])))
    c.append(Case("new formats", "npy: bone of another shape", ["preprocess", "npy/bone", "outs/nb", "--benchmark",
                  "ntu60-xsub"], "train_data_bone.npy"))  # fmt: skip
    one = {"frame_dir": "v1", "label": 1, "total_frames": 5, "keypoint": np.ones((1, 5, 25, 3), np.float32)}
    pkls = {
        "single dict without --split": (one, []),
        "single dict without a label": ({k: v for k, v in one.items() if k != "label"}, ["--split", "test"]),
        "bare list, --split unknown": ([one, one], ["--split", "val"]),
    }
    for i, (name, (obj, extra)) in enumerate(pkls.items()):
        path = write(d, f"pkls/p{i}.pkl", pickle.dumps(obj))
        argv = ["preprocess", path, f"outs/p{i}", "--num-classes", "3", *extra]
        c.append(Case("new formats", f"pkl: {name}", argv, f"p{i}.pkl" if "unknown" not in name
                      else "--split"))  # fmt: skip
    path = write(d, "pkls/mixed.pkl", pickle.dumps([one, 5]))  # the bad entry is skipped and listed
    c.append(Case("new formats", "pkl: bare list holding a number", ["preprocess", path, "outs/mixed", "--split",
                  "train", "--num-classes", "3"], "annotation #1", expect="ok"))  # fmt: skip
    deep = write(d, "pkls/deep.pkl", b"\x80\x02}" + b")" + b"\x85" * 100_000 + b"K\x01s.")
    c.append(Case("new formats", "pkl: tuple key nested 100,000 deep", ["preprocess", deep, "outs/deep"], "deep.pkl"))
    path = split_variant(d, "intnames", replace("name", lambda old: np.arange(len(old))), src="scores.h5")
    c.append(Case("new formats", "score names integers", ["fuse", "scores.h5", path], path))
    bodiless = write(d, "raw_bodiless/S001C001P001R001A001.skeleton", "3\r\n0\r\n0\r\n0\r\n")
    c.append(Case("new formats", "show a file with no body", ["show", bodiless, "--out", "nobody.png"], bodiless))
    c.append(Case("new formats", "synth over its own files", ["synth", "raw", "--classes", "1,2,3",
                  "--samples-per-class", "2", "--subjects", "1,3", "--max-frames", "40"], "raw"))  # fmt: skip
    c.append(Case("new formats", "info of a folder", ["info", "data"], "data"))
    c.append(Case("new formats", "preprocess of a missing path", ["preprocess", "nope", "outs/nope"], "nope"))
    return c


def table(results: list[Result]) -> str:
    rows = ["| class | case | exit | traceback | first stderr line | s | peak MiB | clean |", "|---" * 8 + "|"]
    for r in results:
        first = r.first_stderr.replace("|", "\\|")[:110]
        verdict = "yes" if r.clean else f"**no**: {r.why}"
        rows.append(
            f"| {r.cls} | {r.name} | {r.exit} | {'yes' if r.traceback else 'no'} | {first} | {r.wall_s:.1f} "
            f"| {r.peak_mib:.0f} | {verdict} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="work folder (kept); default: a temporary one, removed")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--max-mem-mib", type=int, default=3072, help="peak RSS limit per case")
    ap.add_argument("--only", default="", help="run only cases whose class or name holds this text")
    args = ap.parse_args()
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="agcn-hostile-")
        d = Path(tmp.name)
    else:
        d = args.out.resolve()
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        build_valid(d)
        corpus = [k for k in cases(d) if args.only in k.cls + " " + k.name]
        results = []
        for k in corpus:
            code, out, err, wall, mib, timed_out = run_child([*AGCN, *k.argv], d, args.timeout, k.sigint_after)
            why = judge(k, code, out, err, wall, mib, timed_out, args)
            first = next((line for line in err.splitlines() if line.strip()), "")
            results.append(
                Result(k.cls, k.name, code, "Traceback" in out + err, first, wall, mib, not why, why, k.argv)
            )
            if not args.json:
                print(
                    f"{'ok ' if not why else 'BAD'} {wall:5.1f}s {mib:6.0f}MiB {k.cls}: {k.name} {why}", file=sys.stderr
                )
        total = time.perf_counter() - t0
    finally:
        if tmp is not None:
            tmp.cleanup()
    n_clean = sum(r.clean for r in results)
    slowest = max(results, key=lambda r: r.wall_s)
    biggest = max(results, key=lambda r: r.peak_mib)
    summary = (
        f"{len(results)} cases, {n_clean} clean; slowest {slowest.wall_s:.1f} s ({slowest.cls}: {slowest.name}); "
        f"peak memory {biggest.peak_mib:.0f} MiB ({biggest.cls}: {biggest.name}); total {total:.0f} s"
    )
    if args.json:
        print(json.dumps({"summary": summary, "cases": [asdict(r) for r in results]}, indent=1))
    else:
        print(table(results))
        print()
        print(summary)
    return 0 if n_clean == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
