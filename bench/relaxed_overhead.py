"""Energy + forces time of strict, relaxed (θ up to l=2) and field-input models in one run.

    python bench/relaxed_overhead.py [--molecules 64] [--repeats 20] [--dtype float32]

Prints the median wall time per call (neighbour list included, as in MD) and the ratios
relaxed / strict and field / strict, measured in the same process on the same structure.
"""

from __future__ import annotations

import argparse

import torch
from timing import time_interleaved

from regnn_ff import RelaxedPotential
from regnn_ff.data.structures import water_box

VARIANTS = {
    "strict": {},
    "relaxed (l_relaxed=2)": {"l_relaxed": 2},
    "field input (1x1o)": {"field_irreps": "1x1o"},
    "relaxed + field": {"l_relaxed": 2, "field_irreps": "1x1o"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=64, help="water molecules in the box (64 = 192 atoms)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--channels", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    atoms = water_box(args.molecules)
    dtype = getattr(torch, args.dtype)
    print(f"{len(atoms)}-atom water box, {args.dtype}, {torch.get_num_threads()} threads, "
          f"2 layers, {args.channels} channels, l_max 2, r_max 5 Å")
    calls = {}
    for name, extra in VARIANTS.items():
        model = RelaxedPotential(dict(species=["H", "O"], channels=args.channels, **extra)).to(dtype).eval()
        field = [0.0, 0.0, 0.1] if "field_irreps" in extra else None
        calls[name] = lambda model=model, field=field: model.compute(atoms, field=field)
    results = time_interleaved(calls, args.repeats)
    strict = results["strict"]
    print(f"{'model':<24}{'ms/call':>10}{'/ strict':>10}")
    for name, t in results.items():
        print(f"{name:<24}{t * 1e3:>10.1f}{t / strict:>10.2f}")


if __name__ == "__main__":
    main()
