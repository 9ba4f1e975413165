"""tune_allocator really keeps freed memory: repeated large allocations stop faulting pages in.

Each measurement runs in a fresh interpreter, so the heap's history (earlier tests) cannot decide it.
"""

import subprocess
import sys

import pytest

from regnn_ff.performance import tune_allocator

PROBE = """
import resource, sys, torch
from regnn_ff.performance import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        blocks = [torch.ones(5_000_000) for _ in range(3)]  # 3 x 20 MB, every page touched
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()  # the first round may grow the heap
print(faults())
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is what tune_allocator sets")
def test_tune_allocator_keeps_freed_memory():
    # 5 rounds of 60 MB are ~73,000 page faults when each round's memory goes back to the kernel.
    assert _faults("default") > 20_000
    assert _faults("tuned") < 2_000


def test_tune_allocator_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_allocator() is False
