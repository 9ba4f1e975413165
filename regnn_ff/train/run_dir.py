"""A training run's directory: one trainer at a time, no leftovers, and resumes that fit the run.

The lock is ``fcntl.flock`` on ``RUN_DIR/.lock``: the kernel releases it when its holder exits, even
by SIGKILL, so a stale lock never blocks the next run; the file holds the holder's pid for the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml

from ..atomic import file_in_the_way, is_leftover

LOCK_FILE = ".lock"


class RunDirLock:
    """Held while a trainer writes into a run directory; :meth:`release` when done."""

    def __init__(self, run_dir: Path, fd: int, created: bool):
        self.run_dir = run_dir
        self.fd: Optional[int] = fd
        self.created = created

    def release(self) -> None:
        if self.fd is None:
            return
        if self.created and [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
            # The run failed before writing anything: leave no empty directory behind.
            os.unlink(self.run_dir / LOCK_FILE)
            self.run_dir.rmdir()
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None


def _check_place(run_dir: Path) -> None:
    blocking = file_in_the_way(run_dir)
    if blocking == run_dir:
        raise NotADirectoryError(f"run_dir {run_dir} is a file, not a directory")
    if blocking is not None:
        raise NotADirectoryError(f"run_dir {run_dir}: {blocking} is a file, not a directory")


def claim_run_dir(run_dir: Union[str, Path]) -> RunDirLock:
    """Create ``run_dir`` if needed and lock it for this process; remove temporary files a killed run
    left behind. A run directory another live trainer holds is a one-line error naming its pid."""
    run_dir = Path(run_dir)
    _check_place(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise type(err)(f"run_dir {run_dir}: cannot write there ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(f"run_dir {run_dir} is in use by another training process (pid {holder}); "
                         "wait for it to finish or choose another run_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    for path in run_dir.iterdir():
        if path.is_file() and is_leftover(path.name):
            path.unlink()  # written by a run killed mid-write; we hold the lock, so no one is writing it
    return RunDirLock(run_dir, fd, created)


#: Entries a resumed run must share with the run it continues (they fix the model's tensors).
FIXED_ON_RESUME = ("model", "dtype")


def check_resume(config: Dict[str, Any], run_dir: Union[str, Path]) -> None:
    """Refuse to resume ``run_dir`` with a config whose architecture differs from the one it was
    started with (``config`` as ``TrainConfig.to_dict()``); names the differing keys."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return
    started = yaml.safe_load(path.read_text()) or {}
    for key in FIXED_ON_RESUME:
        old, new = started.get(key), config.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                raise ValueError(f"cannot resume {run_dir} with a different {key}: "
                                 f"{', '.join(f'{key}.{k} ({old.get(k)!r} -> {new.get(k)!r})' for k in changed)}; "
                                 "the stored weights fit the old one; start a new run_dir instead")
        elif old != new:
            raise ValueError(f"cannot resume {run_dir} with a different {key} ({old!r} -> {new!r}); "
                             "start a new run_dir instead")
