"""The record of where and how a run was made: versions, device, command line, git commit.

`agcn train` stores `environment()` in RUN_DIR/config.json and in each checkpoint (last.pt,
best.pt) under `environment`: the record of the process that began the run. Each `--resume`
adds its own record (with `epoch`, the epochs done when it took over) to the list `resumes`, so
the first record is never overwritten. Collecting it never fails a run: a fact that cannot be
found is None.
"""

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from .. import __version__

GIT_TIMEOUT_S = 2.0  # a slow or hung git (network file system) must not hold up training


def environment(device: torch.device | None = None) -> dict[str, Any]:
    """Versions (agcn, torch, CUDA and cuDNN: None on CPU builds), the device's name, Python, the
    command line (argv as a list), the git commit of the agcn checkout and whether its tracked
    files differ from it (None for both outside a checkout), and the UTC time."""
    commit, dirty = git_state()
    return {
        "agcn": __version__,
        "torch": str(torch.__version__),  # a plain str: checkpoints load with weights_only=True
        "cuda": torch.version.cuda and str(torch.version.cuda),  # the CUDA torch was built for; None on CPU builds
        "cudnn": _cudnn_version(),
        "device": device_name(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": [str(a) for a in sys.argv],
        "git_commit": commit,
        "git_dirty": dirty,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cudnn_version() -> int | None:
    """cuDNN's version as torch reports it (e.g. 90100 for 9.1.0); None on CPU builds."""
    try:
        return int(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    except Exception:  # a broken CUDA install must not fail the run
        return None


def device_name(device: torch.device | None = None) -> str:
    """`torch.cuda.get_device_name` for a CUDA device, else the CPU's model name."""
    try:
        if device is not None and device.type == "cuda":
            return torch.cuda.get_device_name(device)
    except Exception:  # a record must not fail the run
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout agcn runs from; (None, None) when agcn is not run from
    one (an installed package, no git, a timeout). Read-only: no index refresh, no lock taken."""
    package = Path(__file__).resolve().parent.parent  # agcn_cli/
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=package, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True)  # fmt: skip
        return done.stdout.strip()

    try:
        # the checkout must be agcn's own: a venv inside another project's repository is not
        if Path(git("rev-parse", "--show-toplevel")).resolve() != package.parent:
            return None, None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError, ValueError):  # no git, not a checkout, no commit yet, timeout
        return None, None
    return (commit, dirty) if len(commit) == 40 else (None, None)
