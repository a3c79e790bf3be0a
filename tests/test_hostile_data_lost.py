"""Issue 15, "Data lost": a failed `agcn train --overwrite` keeps the old run; two writers of one
split file or one run folder are serialised or refused (io/atomic.locked); temporaries of killed
processes are cleaned on the next write."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import TrainConfig
from agcn_cli.engine.fit import fit
from agcn_cli.engine.rundir import REPLACED, hold_run_dir
from agcn_cli.errors import AgcnError
from agcn_cli.io import atomic
from agcn_cli.io.streamfile import materialize_streams
from tests.helpers import tiny_config, write_split

ROOT = Path(__file__).resolve().parents[1]
OLD_RUN = ("last.pt", "best.pt", "config.json", "metrics.jsonl", "train.log")


def quiet(_: str) -> None:
    pass


def config(data: Path, out: Path, **kw) -> TrainConfig:
    return tiny_config(data, out, **{"epochs": 1, **kw})


def one_error_line(args: list[str]) -> str:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.fixture(scope="module")
def old_run(tiny, tmp_path_factory, one_thread) -> Path:
    """A finished one-epoch run, and a NaN split to make a new run fail at its first batch."""
    run = tmp_path_factory.mktemp("old") / "run"
    fit(config(tiny, run), log=quiet)
    assert all((run / name).is_file() for name in OLD_RUN)
    bad = run.parent / "nan.h5"
    write_split(bad, (5, 9, 12, 7, 10, 6, 8, 11, 4, 9, 10, 6))
    with h5py.File(bad, "r+") as f:
        f["joint"][...] = float("nan")
    return run


def snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in OLD_RUN if name != "train.log"}


# ---- --overwrite keeps the old run until the new one has a checkpoint ----------------------------


def test_failed_overwrite_keeps_the_old_run(old_run, tiny, monkeypatch):
    before = snapshot(old_run)
    # train now refuses NaN frames at load; let them through to fail inside the run, after setup
    monkeypatch.setattr("agcn_cli.engine.data._check_finite", lambda *a: None)
    monkeypatch.setenv("AGCN_JOINT_CACHE", "off")  # (the joint cache checks them as it is written)
    # before: the old last.pt, best.pt, config.json and metrics.jsonl were deleted at setup; the
    # NaN loss at batch 1 then left a folder holding only the new config.json and train.log
    r = CliRunner().invoke(app, ["train", str(old_run.parent / "nan.h5"), "--out", str(old_run), "--overwrite",
                                 "--clip-len", "4", "--batch-size", "4", "--no-tensorboard"])  # fmt: skip
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "error: non-finite training loss at epoch 1, batch 1" in r.output.strip().splitlines()[-1]
    assert snapshot(old_run) == before
    assert not (old_run / REPLACED).exists()

    # a crash inside setup, after the old run was moved aside and the new config.json written
    def crash(*args, **kwargs):
        raise RuntimeError("crash")

    monkeypatch.setattr("agcn_cli.engine.run.MetricsLog", crash)
    with pytest.raises(RuntimeError, match="crash"):
        fit(config(tiny, old_run, overwrite=True, epochs=3), log=quiet)
    assert snapshot(old_run) == before and not (old_run / REPLACED).exists()


def test_overwrite_drops_the_old_run_at_the_first_checkpoint(old_run, tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(old_run, run)
    seen = []

    def log(line: str) -> None:  # after epoch 1's last.pt: the old run is no longer kept
        if line.startswith("epoch 1/"):
            seen.append((run / REPLACED).exists())

    fit(config(tiny, run, overwrite=True, epochs=2), log=log)
    assert seen == [False]
    assert sorted(p.name for p in run.iterdir()) == sorted(OLD_RUN)


def test_a_run_killed_before_its_first_checkpoint_gives_the_old_run_back(tmp_path):
    run = tmp_path / "run"
    (run / REPLACED).mkdir(parents=True)  # as kill -9 leaves it: the old run aside, the new one begun
    for name in OLD_RUN:
        (run / REPLACED / name).write_text(f"old {name}")
    (run / "config.json").write_text("new config")
    (run / "train.log").write_text("new log")
    with hold_run_dir(run):  # the next agcn train (or --resume) into RUN_DIR
        assert {name: (run / name).read_text() for name in OLD_RUN} == {name: f"old {name}" for name in OLD_RUN}
    assert not (run / REPLACED).exists()


# ---- locks ---------------------------------------------------------------------------------------


def holder(target: Path, holder_name: str) -> subprocess.Popen:
    """Another process holding `target`'s lock until killed."""
    code = (
        "import sys, time; from pathlib import Path; from agcn_cli.io.atomic import locked\n"
        f"with locked(Path({str(target)!r}), wait=False, holder={holder_name!r}):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_train_into_one_run_dir_is_refused_at_once(tiny, tmp_path, one_thread):
    run = tmp_path / "run"
    proc = holder(run, "agcn train")
    try:
        t0 = time.perf_counter()
        # before: both runs trained into RUN_DIR, their metrics rows interleaved
        line = one_error_line(["train", str(tiny), "--out", str(run), "--clip-len", "4", "--no-tensorboard"])
        assert line == (
            f"error: {run}: in use by another agcn train (pid {proc.pid}); wait for it to end, or choose another --out"
        )
        assert time.perf_counter() - t0 < 5 and not run.exists()  # refused before the data load
    finally:
        proc.kill()
        proc.wait()
    # the lock of a killed process does not block: the OS released it
    fit(config(tiny, run), log=quiet)
    assert (run / "last.pt").is_file() and not atomic.lock_path(run.resolve()).exists()  # removed on release


def test_two_streams_on_one_file_keep_both(tmp_path):
    path = write_split(tmp_path / "train.h5")
    started = threading.Event()

    def slow(_: int) -> None:  # hold the first rebuild open while the second one starts
        started.set()
        time.sleep(0.3)

    first = threading.Thread(target=materialize_streams, args=(path, ["bone"]), kwargs={"progress": slow})
    first.start()
    assert started.wait(10)
    # before: each rebuilt the file from its own snapshot, and the last rename lost the other's stream
    report = materialize_streams(path, ["joint-motion"])
    first.join()
    assert report["written"] == ["joint-motion"]
    with h5py.File(path, "r") as f:
        assert {"joint", "bone", "joint-motion"} <= set(f)


def test_a_waiter_that_gets_the_removed_lock_file_takes_the_new_one(tmp_path):
    target = tmp_path / "f"
    inside, order = threading.Event(), []

    def waiter() -> None:  # opens the lock file the first holder removes on release
        with atomic.locked(target, wait=True):
            inside.set()
            order.append("waiter")
            time.sleep(0.3)

    with atomic.locked(target, wait=False):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    assert inside.wait(10)
    with pytest.raises(AgcnError, match=f"{target}: in use by another agcn process \\(pid {os.getpid()}\\)"):
        with atomic.locked(target, wait=False):  # the waiter holds the file now at the name
            pass
    thread.join()
    assert order == ["first", "waiter"] and not atomic.lock_path(target).exists()


def test_streams_on_a_missing_file_leaves_no_lock_behind(tmp_path):
    with pytest.raises(AgcnError, match="x.h5: no such file"):
        materialize_streams(tmp_path / "nope" / "x.h5", ["bone"])
    assert list(tmp_path.iterdir()) == []


# ---- temporaries left by kill -9 -----------------------------------------------------------------


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "scores.pkl"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".scores.pkl.tmp-{dead.pid}"
        kept = [
            tmp_path / f".scores.pkl.tmp-{live.pid}",  # another process writing it now
            tmp_path / f".other.pkl.tmp-{dead.pid}",  # another target
            tmp_path / ".scores.pkl.tmp-notapid",
        ]
        for p in (stale, *kept):
            p.write_bytes(b"half")
        with atomic.atomic_output(out) as tmp:
            tmp.write_bytes(b"whole")
        assert out.read_bytes() == b"whole" and not stale.exists()
        assert all(p.read_bytes() == b"half" for p in kept)
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    assert atomic.pid_alive(os.getpid()) and not atomic.pid_alive(dead.pid)
