"""Process-wide settings that make repeated model calls (MD) faster; each is explicit and optional.

Every MD step allocates the same large per-edge tensors and frees them again. glibc's malloc hands
large freed blocks back to the kernel (``mmap``/trim), so the next step pays a page fault and the
zeroing of every page it touches again: on 2 CPU cores that was a fifth of the time of a 648-atom
call and a third at 3000 atoms. :func:`tune_allocator` asks malloc to keep freed memory for reuse.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above this (half its 64 MB heap size on 64-bit systems).
_MAX_MMAP_THRESHOLD = 32 << 20


def tune_allocator(retain_mb: int = 1024) -> bool:
    """Let glibc's malloc keep up to ``retain_mb`` MB of freed memory for reuse (process-wide).

    Blocks up to 32 MB are then served from the heap instead of fresh ``mmap`` pages, and free
    memory at the top of the heap is returned to the system only beyond ``retain_mb``. The cost is
    that the process's resident memory stays near its peak between calls. Returns True when the
    settings were applied (Linux with glibc), False elsewhere, where nothing changes. The ASE
    calculator and the OpenMM force builder call it unless told not to (``tune_allocator=False``).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    retain = max(int(retain_mb), 0) << 20
    return bool(mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, min(retain, 2**31 - 1)))
