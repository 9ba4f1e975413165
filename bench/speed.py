"""One command for speed: regnn-ff against a same-width MACE on periodic water boxes, in one run.

    python bench/speed.py [--sizes 64 216 512 1000] [--repeats 10] [--no-mace]

Times energy + forces (neighbour list included, float32, median of at least --repeats calls after
warm-up, and for our models of at least --min-seconds of calls; torch threads = physical cores) of
our strict, relaxed (l_relaxed=2) and field-input (1x1o) models at MACE's width (2 layers,
32 channels, l ≤ 2), and the MACE peer through its own ASE calculator. The peer lives in its own
virtual environment (``bench/.mace-venv``, created on first use: mace-torch
pins e3nn 0.4.4, so it is never a dependency of the project). Also: peak memory at the largest box
(ours and MACE, each in a fresh process), float32 vs float64 energies, the OpenMM step / raw call
ratio for both backends (relaxed model) and ASE MD steps per second at the smallest box, and the test
force MAE of this width trained on the demo's data (``accuracy.py``). Our models run with
``tune_allocator()`` as the calculators do; MACE is timed as its users run it and again with the
same allocator setting. Prints one table and writes it as CSV (``bench/results/speed.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accuracy import demo_accuracy, describe  # noqa: E402
from timing import peak_rss_mb, time_interleaved  # noqa: E402

from regnn_ff import RelaxedPotential  # noqa: E402
from regnn_ff.data.structures import water_box  # noqa: E402
from regnn_ff.performance import tune_allocator  # noqa: E402

VARIANTS = {"strict": {}, "relaxed": {"l_relaxed": 2}, "field": {"field_irreps": "1x1o"}}
MACE_VENV = HERE / ".mace-venv"
MACE_PACKAGES = ["torch>=2.10,<2.13", "mace-torch==0.3.16"]


def our_model(variant: str, dtype=torch.float32) -> RelaxedPotential:
    torch.manual_seed(0)
    return RelaxedPotential(dict(species=["H", "O"], channels=32, l_max=2, num_layers=2, r_max=5.0,
                                 **VARIANTS[variant])).to(dtype).eval()


def mace_python() -> Path:
    python = MACE_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating the MACE peer's virtual environment in {MACE_VENV} (first use) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MACE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *MACE_PACKAGES], check=True)
    return python


def peak_memory_child(variant: str, box: str, tuned: bool) -> None:
    """Run in a fresh process: one energy + forces call on ``box``; print peak RSS in MB."""
    if tuned:
        tune_allocator()
    atoms = ase.io.read(box)
    model = our_model(variant)
    field = [0.0, 0.0, 0.1] if "field_irreps" in VARIANTS[variant] else None
    model.compute(atoms, field=field)
    print(peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 216, 512, 1000], help="water molecules per box")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=10.0,
                        help="keep timing each of our models until it has run this long (stable medians for small boxes)")
    parser.add_argument("--no-mace", action="store_true", help="skip the MACE peer")
    parser.add_argument("--no-tune-allocator", action="store_true", help="leave malloc's defaults for our models")
    parser.add_argument("--no-accuracy", action="store_true", help="skip training the bench width on the demo's data")
    parser.add_argument("--mace-python", help="Python of an existing environment with mace-torch 0.3.16 (default: bench/.mace-venv)")
    parser.add_argument("--csv", default=str(HERE / "results" / "speed.csv"))
    parser.add_argument("--peak-memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_child:
        peak_memory_child(*args.peak_memory_child, tuned=not args.no_tune_allocator)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    # As the ASE calculator and the OpenMM builder do by default (see regnn_ff.performance).
    tuned = not args.no_tune_allocator and tune_allocator()
    print(f"allocator tuned (regnn_ff.performance.tune_allocator): {tuned}")
    workdir = Path(tempfile.mkdtemp())
    boxes = {}
    for n in args.sizes:
        atoms = water_box(n)
        path = workdir / f"water_{len(atoms)}.xyz"
        ase.io.write(path, atoms)
        boxes[len(atoms)] = (atoms, path)

    rows = {}
    models = {v: our_model(v) for v in VARIANTS}
    for n_atoms, (atoms, _) in boxes.items():
        calls = {v: (lambda m=m, v=v: m.compute(atoms, field=[0.0, 0.0, 0.1] if v == "field" else None))
                 for v, m in models.items()}
        rows[n_atoms] = time_interleaved(calls, args.repeats, min_seconds=args.min_seconds)
        print(f"{n_atoms} atoms: " + ", ".join(f"{v} {t * 1e3:.1f} ms" for v, t in rows[n_atoms].items()), flush=True)

    largest = max(boxes)
    peaks = {}
    for variant in VARIANTS:
        child = [sys.executable, __file__, "--peak-memory-child", variant, str(boxes[largest][1])]
        out = subprocess.run(child + (["--no-tune-allocator"] if args.no_tune_allocator else []),
                             capture_output=True, text=True, check=True)
        peaks[variant] = float(out.stdout.strip().splitlines()[-1])

    mace = None
    if not args.no_mace:
        python = args.mace_python or mace_python()
        # MACE as its users run it, and with the same allocator setting as ours (a fair second view).
        for column, extra in (("mace", []), ("mace_tuned", ["--tune-allocator"])):
            result = workdir / f"{column}.json"
            subprocess.run([str(python), str(HERE / "mace_peer.py"), str(result), *[str(p) for _, p in boxes.values()],
                            "--repeats", str(args.repeats), *extra], check=True)
            peer = json.loads(result.read_text())
            mace = mace or peer
            for n_atoms in rows:
                rows[n_atoms][column] = peer["seconds"][str(n_atoms)]

    smallest = min(boxes)
    atoms = boxes[smallest][0]
    from openmm_overhead import measure

    engines = {backend: measure(atoms, our_model("relaxed"), backend, args.repeats) for backend in ("torch", "python")}
    accuracy = None if args.no_accuracy else demo_accuracy(workdir, repeats=args.repeats)
    e32 = models["strict"].compute(atoms)["energy"]
    e64 = our_model("strict", torch.float64).compute(atoms)["energy"]

    header = ["atoms", "strict_ms", "relaxed_ms", "field_ms", "mace_ms", "mace_tuned_ms", "strict/mace",
              "strict/mace_tuned", "relaxed/strict", "field/strict"]
    nan = float("nan")
    table = []
    for n_atoms, t in rows.items():
        m, mt = t.get("mace", nan), t.get("mace_tuned", nan)
        table.append([n_atoms, t["strict"] * 1e3, t["relaxed"] * 1e3, t["field"] * 1e3, m * 1e3, mt * 1e3,
                      t["strict"] / m, t["strict"] / mt, t["relaxed"] / t["strict"], t["field"] / t["strict"]])
    print("\n" + "".join(f"{h:>18}" for h in header))
    for row in table:
        print(f"{row[0]:>18d}" + "".join(f"{x:>18.2f}" for x in row[1:]))
    per_atom = (rows[largest]["strict"] / largest) / (rows[smallest]["strict"] / smallest)
    print(f"\ntime per atom, {largest} vs {smallest} atoms (strict): {per_atom:.2f}")
    print(f"peak memory at {largest} atoms (MB): " + ", ".join(f"{v} {p:.0f}" for v, p in peaks.items())
          + (f", MACE {mace['peak_rss_mb']:.0f}" if mace else ""))
    for backend, t in engines.items():
        print(f"OpenMM CPU, {backend} backend, {smallest} atoms: step {t['openmm'] * 1e3:.1f} ms / raw call "
              f"{t['raw'] * 1e3:.1f} ms = {t['openmm'] / t['raw']:.2f}; ASE Langevin {1 / t['ase']:.1f} steps/s")
    if accuracy:
        print(describe(accuracy))
    print(f"float32 vs float64 energy, {smallest} atoms: |ΔE| = {abs(e32 - e64):.2e} eV ({abs(e32 - e64) / abs(e64):.1e} relative)")
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(table)
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
