"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict


def time_interleaved(calls: Dict[str, Callable[[], object]], repeats: int, warmup: int = 3,
                     min_seconds: float = 0.0) -> Dict[str, float]:
    """Median seconds per call of each callable, run round-robin so drifts in machine load hit all alike.

    Runs at least ``repeats`` rounds, and more until every callable has run for ``min_seconds``
    (short calls on a noisy machine need many samples for a stable median).
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    while len(times[next(iter(calls))]) < repeats or min(sum(t) for t in times.values()) < min_seconds:
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Read from ``VmHWM`` in /proc/self/status, which belongs to the address space and so starts afresh
    at ``exec``; ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a child started by a large parent
    reports the parent's peak (every child of speed.py read 3,295 MB that way).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
