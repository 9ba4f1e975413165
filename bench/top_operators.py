"""Top operators of one energy + forces call (torch.profiler), to see where the time goes.

    python bench/top_operators.py [--molecules 1000] [--variant strict|relaxed|field] [--rows 15] [--no-tune-allocator]

Float32, threads = cores, after warm-up; operators grouped by input shape, sorted by self CPU time.
Also prints the minor page faults per call: large per-edge tensors freshly allocated each call cost
kernel time (first touch) on top of the operators' own.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import VARIANTS, our_model  # noqa: E402

from regnn_ff.data.structures import water_box  # noqa: E402
from regnn_ff.performance import tune_allocator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000, help="water molecules in the periodic box")
    parser.add_argument("--variant", choices=list(VARIANTS), default="strict")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--no-tune-allocator", action="store_true", help="leave malloc's defaults (see the page faults)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if not args.no_tune_allocator:
        tune_allocator()  # as speed.py and the calculators do
    atoms = water_box(args.molecules)
    model = our_model(args.variant)
    field = [0.0, 0.0, 0.1] if args.variant == "field" else None

    def call():
        model.compute(atoms, field=field)

    for _ in range(2):
        call()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(3):
        call()
    seconds, after = (time.perf_counter() - start) / 3, resource.getrusage(resource.RUSAGE_SELF)
    print(f"{len(atoms)} atoms, {args.variant}: {seconds * 1e3:.1f} ms per call, "
          f"{(after.ru_minflt - before.ru_minflt) / 3:.0f} minor page faults per call, "
          f"{(after.ru_stime - before.ru_stime) / 3 * 1e3:.0f} ms kernel time per call")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        call()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=28, max_shapes_column_width=60)
    print(table)


if __name__ == "__main__":
    main()
