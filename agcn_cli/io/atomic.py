"""Atomic output files: write under a temporary sibling name, rename when complete; and locks.

Every file agcn writes goes through here, so an interrupted or failed command never leaves a
half-written output, and a failed --overwrite keeps the old file. A process killed with -9
leaves its temporary file (`.NAME.tmp-PID`); the next write of NAME removes those of processes
no longer alive. `locked` serialises writers that read a file and write it back (`agcn streams`)
and refuses a second `agcn train` into one run folder."""

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AgcnError


def temp_path(path: Path) -> Path:
    """A hidden sibling name for writing `path` before the final rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (True when that cannot be told)."""
    if os.name != "posix" or pid <= 0:  # on Windows os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a PID no system has
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of `path` (`.NAME.tmp-PID`) left by processes no longer alive.

    Those of live processes (another agcn writing the same file) are left alone. Returns the
    files removed."""
    return _remove_dead_temps(path.parent, f".{path.name}.tmp-")


def remove_stale_temps_in(folder: Path) -> list[Path]:
    """`remove_stale_temps` for every file of `folder` at once: one listing, for writers of many
    files (`atomic_output(..., sweep=False)` then skips a listing per file)."""
    return _remove_dead_temps(Path(folder), ".")


def _remove_dead_temps(folder: Path, prefix: str) -> list[Path]:
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix) and ".tmp-" in p.name]
    except OSError:
        return removed
    for p in candidates:
        pid = p.name.rsplit(".tmp-", 1)[1]
        if not pid.isascii() or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:  # gone meanwhile, or not ours to remove: harmless
            pass
    return removed


def refuse_existing(paths: Iterable[Path | None], overwrite: bool) -> None:
    """AgcnError naming the first of `paths` that exists, unless `overwrite`."""
    for path in paths:
        if path is not None and Path(path).is_dir():
            raise AgcnError(f"{path}: is a folder; give a file name to write")
        if path is not None and Path(path).exists() and not overwrite:
            raise AgcnError(f"{path}: already exists; pass --overwrite to replace it")


@contextmanager
def atomic_output(path: Path, *, sweep: bool = True) -> Iterator[Path]:
    """Yield a temporary path; rename it to `path` only if the block completes.

    The folder is created if needed; stale temporaries of `path` (of dead processes) go first,
    unless `sweep` is False (the caller swept the folder once, `remove_stale_temps_in`)."""
    if path.is_dir():  # else the rename fails naming the temporary file
        raise AgcnError(f"{path}: is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgcnError(f"{path}: cannot create its folder ({e.strerror or e})") from None
    if sweep:
        remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def lock_path(path: Path) -> Path:
    """The hidden lock file guarding `path` (a file or a folder): `.NAME.lock` beside it, there
    while a process holds the lock (and after one killed with -9, until the next holder)."""
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: Path, *, wait: bool, holder: str = "agcn process", hint: str = "wait for it to end") -> Iterator[None]:
    """Hold the exclusive lock of `path` (an OS lock on `lock_path(path)`) for the block.

    `wait`: block until the holder releases it; else raise at once `AgcnError("PATH: in use by
    another HOLDER (pid N); HINT")`. The OS releases the lock of a process that dies, so a killed
    run never blocks the next one. The holder writes its PID into the lock file and removes the
    file before releasing it; a waiter that then gets the lock of the removed file sees that it is
    no longer the one at the name and locks the current one (so no two processes ever hold it).
    Without POSIX `flock` (Windows) the `filelock` package locks, and the lock file stays."""
    lock_file = lock_path(Path(path).resolve())
    try:
        import fcntl
    except ImportError:
        with _filelock(path, lock_file, wait, holder, hint):
            yield
        return
    while True:
        pid = _holder_pid(lock_file)
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise AgcnError(f"{path}: cannot lock {lock_file.name} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            if _same_file(fd, lock_file):
                break
        except BlockingIOError:
            os.close(fd)
            pid = _holder_pid(lock_file) or pid
            raise AgcnError(f"{path}: in use by another {holder} (pid {pid or 'unknown'}); {hint}") from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the file the holder before us removed: lock the one at the name now
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # the PID is only for the message of a process that is refused
            pass
        yield
    finally:
        try:
            lock_file.unlink()  # while still held: see above
        except OSError:
            pass
        os.close(fd)  # releases the lock


def _same_file(fd: int, lock_file: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock_file))
    except FileNotFoundError:
        return False


@contextmanager
def _filelock(path: Path, lock_file: Path, wait: bool, holder: str, hint: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(lock_file, thread_local=False)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise AgcnError(f"{path}: in use by another {holder}; {hint}") from None
    except OSError as e:
        raise AgcnError(f"{path}: cannot lock {lock_file.name} ({e.strerror or e})") from None
    try:
        yield
    finally:
        lock.release()


def _holder_pid(lock_file: Path) -> int | None:
    try:
        text = lock_file.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isascii() and text.isdigit() else None
