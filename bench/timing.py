"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict


def time_interleaved(calls: Dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> Dict[str, float]:
    """Median seconds per call of each callable, run round-robin so drifts in machine load hit all alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
