"""Test helpers: small `.skeleton` files written by hand (the real format, CRLF line ends) and
split files of random samples."""

import hashlib
import signal
from pathlib import Path

import h5py
import numpy as np

from agcn_cli.io.splitwrite import SampleMeta, SplitWriter
from agcn_cli.skeleton.layouts import get_layout


def write_skeleton(path: Path, frames: list[list[tuple[int, np.ndarray]]], newline: str = "\r\n") -> Path:
    """`frames[t]` lists the bodies of frame t as (body_id, joints (25, 3) metres)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.1 -0.2 2")
            lines.append(str(len(joints)))
            for x, y, z in joints:
                lines.append(f"{x:.7g} {y:.7g} {z:.7g} 250.1 180.2 900.3 500.4 0.1 0.2 0.3 0.9 2")
    path = Path(path)
    path.write_text(newline.join(lines) + newline)
    return path


def random_body(rng: np.random.Generator, frames: int, offset=(0.0, 0.0, 3.0)) -> np.ndarray:
    """(frames, 25, 3) plausible-ish joints: a random walk around a standing pose."""
    base = rng.normal(scale=0.12, size=(25, 3)) + np.asarray(offset)
    base[:, 1] = np.linspace(0.8, -0.8, 25)  # taller than wide
    drift = np.cumsum(rng.normal(scale=0.01, size=(frames, 25, 3)), axis=0)
    return base + drift


def write_split(
    path: Path,
    lengths=(5, 12, 1, 30, 17, 8, 23, 40),
    *,
    layout: str = "ntu25",
    persons: int = 2,
    normalized: bool = True,
    seed: int = 0,
) -> Path:
    """A split file of random samples, `lengths[i]` frames each, label i % 3."""
    rng = np.random.default_rng(seed)
    lay = get_layout(layout)
    c, v = len(lay.channels), lay.num_joints
    attrs = {"layout": layout, "channels": ",".join(lay.channels), "recipe": "mmaction2", "normalized": normalized,
             "num_classes": 3, "split": "train", "benchmark": "ntu60-xsub"}  # fmt: skip
    with SplitWriter(path, attrs, num_persons=persons, num_joints=v, num_channels=c) as w:
        for i, t in enumerate(lengths):
            x = rng.normal(size=(persons, t, v, c)).astype(np.float32)
            if lay.channels[-1] == "score":
                x[..., -1] = rng.uniform(0.1, 1.0, size=x.shape[:-1])
            w.append(x, SampleMeta(f"S001C001P001R001A{i + 1:03d}", i % 3), persons)
    return path


def storage(d: h5py.Dataset) -> tuple:
    return d.shape, d.dtype, d.chunks, d.compression, d.shuffle


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- edits of a split file (h5py.File -> None), for the hostile-input tests and corpus ----------------


def set_attr(key, value):
    def edit(f):
        f.attrs[key] = value

    return edit


def del_attr(key):
    def edit(f):
        del f.attrs[key]

    return edit


def replace(key, make):
    """Replace dataset `key` by `make(old values)`."""

    def edit(f):
        old = f[key][:]
        del f[key]
        f.create_dataset(key, data=make(old))

    return edit


def set_values(key, index, value):
    def edit(f):
        f[key][index] = value

    return edit


class DeclaredArray:
    """Pickles as numpy's `_reconstruct(ndarray, shape, dtype)` with no BUILD: a shape, no data."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        core = getattr(np, "_core", None) or np.core
        return core.multiarray._reconstruct, (np.ndarray, self.shape, b"f")


def run_ok(*args) -> "object":
    """`agcn ARGS...` through Typer's runner (arguments made strings), asserted to succeed; its result."""
    from typer.testing import CliRunner

    from agcn_cli.cli.app import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def one_error_line(args: list[str], notes: bool = False) -> str:
    """The one `error:` line of a failing `agcn` command (exit 1, no traceback); `notes`: `note:` and
    `warning:` lines may come with it."""
    from typer.testing import CliRunner

    from agcn_cli.cli.app import app

    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.strip().splitlines()
    if notes:
        lines = [line for line in lines if not line.startswith(("note: ", "warning: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]


def signal_in_step(monkeypatch, step: int, signum: int = signal.SIGTERM) -> None:
    """`signum` arrives at the end of the `step`-th training step from now (after the step's own check)."""
    from agcn_cli.engine import loop

    original, calls = loop.__dict__["train_step"], [0]

    def step_then_signal(*args, **kw):
        stop = original(*args, **kw)
        calls[0] += 1
        if calls[0] == step:
            signal.raise_signal(signum)
        return stop

    monkeypatch.setitem(loop.__dict__, "train_step", step_then_signal)  # the one epoch loop's step


def tiny_config(data, out, **kw):
    """A TrainConfig for mechanics on the `tiny` splits: 4-frame clips, batches of 4, 2 epochs,
    validation each epoch, deterministic, no tensorboard; `kw` overrides."""
    from agcn_cli.engine.config import TrainConfig

    base = dict(data=str(data), out=str(out), clip_len=4, epochs=2, batch_size=4, lr=0.05, auto_scale_lr=False,
                val_every=1, deterministic=True, tensorboard=False)  # fmt: skip
    return TrainConfig(**{**base, **kw})
