"""tune_allocator really keeps freed memory: repeated large allocations stop faulting pages in."""

import resource
import sys

import torch

from regnn_ff.performance import tune_allocator


def _faults_of_repeated_allocations() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        blocks = [torch.ones(5_000_000) for _ in range(3)]  # 3 x 20 MB, every page touched
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_tune_allocator_keeps_freed_memory():
    if not sys.platform.startswith("linux"):
        assert tune_allocator() is False
        return
    assert tune_allocator() is True
    _faults_of_repeated_allocations()  # first round may grow the heap
    # 5 rounds of 60 MB would be ~73,000 page faults if each round's memory went back to the kernel.
    assert _faults_of_repeated_allocations() < 2_000
