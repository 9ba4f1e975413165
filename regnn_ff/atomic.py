"""Atomic file writes: a crash or a bad input never leaves a half-written model, checkpoint or table."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_in_the_way(directory: Union[str, Path]) -> Optional[Path]:
    """The file (not a directory) at ``directory`` or at its nearest existing parent, if any: what
    stops ``directory`` from being created."""
    for place in (Path(directory), *Path(directory).parents):
        if place.exists():
            return None if place.is_dir() else place
    return None


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension); on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its old content. The file gets
    the permissions of an ordinary new file (0666 less the process umask), not the temporary file's
    0600. Errors name ``path``, never the temporary file: ``IsADirectoryError`` when ``path`` is a
    directory, ``NotADirectoryError`` when a parent is a file, ``PermissionError`` otherwise.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory; give a file name")
    blocking = file_in_the_way(path.parent)
    if blocking is not None:
        raise NotADirectoryError(f"{path}: cannot write here, {blocking} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as err:
        raise type(err)(f"{path}: cannot write here ({err.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def is_leftover(name: str) -> bool:
    """True for the name of a temporary file :func:`atomic_path` leaves when the process is killed."""
    return name.startswith(".") and ".tmp" in name
