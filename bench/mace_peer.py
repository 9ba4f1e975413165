"""The MACE peer, run with the Python of its own virtual environment (mace-torch pins e3nn 0.4.4).

    <mace-venv>/bin/python bench/mace_peer.py OUT.json BOX1.xyz [BOX2.xyz ...] [--repeats 10] [--tune-allocator]

Builds a MACE model of the same width as ours (hidden 32x0e+32x1o, max_ell 2, correlation 3,
2 interactions, r_max 5 Å, random weights, float32), saves it, loads it through MACE's own ASE
calculator and times energy + forces on each box (median after warm-up). Also reports the peak
resident memory of this process. Writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # e3nn 0.4.4 loads constants with torch.load

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402
from mace.calculators import MACECalculator  # noqa: E402
from mace.modules import ScaleShiftMACE, gate_dict  # noqa: E402
from mace.modules.blocks import RealAgnosticResidualInteractionBlock  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import peak_rss_mb  # noqa: E402  (bench/timing.py: standard library only)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=RealAgnosticResidualInteractionBlock, interaction_cls_first=RealAgnosticResidualInteractionBlock,
        num_interactions=2, num_elements=2, hidden_irreps=o3.Irreps("32x0e+32x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([-13.6, -2040.0]), avg_num_neighbors=20.0, atomic_numbers=[1, 8],
        correlation=3, gate=gate_dict["silu"], atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("boxes", nargs="+")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tune-allocator", action="store_true", help="apply regnn_ff.performance.tune_allocator first")
    args = parser.parse_args()
    if args.tune_allocator:
        # The module is standard-library only; load it by path (this environment has no regnn_ff).
        path = Path(__file__).resolve().parents[1] / "regnn_ff" / "performance.py"
        spec = importlib.util.spec_from_file_location("regnn_performance", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not module.tune_allocator():
            raise SystemExit("tune_allocator() could not be applied here")
    torch.set_default_dtype(torch.float32)
    path = os.path.join(tempfile.mkdtemp(), "mace.model")
    torch.save(build_model().float(), path)
    calc = MACECalculator(model_paths=path, device="cpu", default_dtype="float32")
    results = {}
    for box in args.boxes:
        atoms = ase.io.read(box)
        atoms.calc = calc

        def call():
            atoms.positions[0, 0] += 1e-6  # a new geometry each call, as in MD
            atoms.get_forces()

        for _ in range(3):
            call()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        results[str(len(atoms))] = statistics.median(times)
    peak_mb = peak_rss_mb()
    with open(args.output, "w") as handle:
        json.dump({"seconds": results, "peak_rss_mb": peak_mb, "torch_threads": torch.get_num_threads()}, handle)


if __name__ == "__main__":
    main()
