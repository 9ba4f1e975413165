"""LAMMPS (pair_style regnn) with 1 and 2 MPI ranks against the ASE calculator, on water boxes.

One model (the example's shape: 16 channels, r_max 4 Å, two blocks, θ up to l = 1, an E-field input;
random weights: speed does not depend on them), float32, in a field of 0.1 V/Å along z. For each
box size: atom-steps per second of ``lmp`` with 1 rank × 2 threads and 2 ranks × 1 thread (10 NVE
steps after 2 warm-up steps), the ASE calculator's (one process, 2 threads, one energy+forces call
per step), the atoms each rank evaluates (local + ghosts) and each rank's peak memory. A rank with
more than ``--chunk`` local atoms evaluates them in cells of at most that many (``pair_style regnn
chunk N``), each with its own ghost shell, so memory stays bounded; a size whose estimated memory
still exceeds what the machine has free is reported as such instead of run.

    python bench/lammps_scaling.py [--sizes 3000 24000] [--steps 10] [--chunk 3000]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
import time
from pathlib import Path

import torch

from regnn_ff import RelaxedPotential
from regnn_ff.calculators import REGNNCalculator
from regnn_ff.calculators.lammps import build_plugin, run_lammps, write_data
from regnn_ff.data.structures import water_box
from regnn_ff.export.lammps import save_domain_model
from regnn_ff.export.torchscript import save_scripted

CONFIG = dict(species=["H", "O"], channels=16, r_max=4.0, num_layers=2, l_relaxed=1, field_irreps="1x1o")
SKIN = 0.5  # Å
INPUT = """units metal
atom_style atomic
boundary p p p
newton on
read_data {data}
plugin load {plugin}
pair_style regnn chunk {chunk} field 0.0 0.0 0.1
pair_coeff * * {model} H O
neighbor {skin} bin
comm_modify cutoff {cutoff}
velocity all create 300.0 1 mom yes rot yes
timestep 0.0005
thermo 100
fix md all nve
run 2
run {steps}
"""


def available_mb() -> float:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return math.inf


def lammps(root: Path, nprocs: int, threads: int) -> dict:
    """Loop time of the timed run, atoms per rank and peak memory per rank (MB)."""
    output = run_lammps("in.bench", nprocs, cwd=root, threads=threads,
                        wrapper=["/usr/bin/time", "-f", "peak_rss_kb %M"])
    loops = re.findall(r"Loop time of ([\d.e+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", output)
    seconds, steps, atoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2])
    local = float(re.findall(r"Nlocal:\s+([\d.]+) ave", output)[-1])
    ghost = float(re.findall(r"Nghost:\s+([\d.]+) ave", output)[-1])
    peaks = [int(k) / 1024 for k in re.findall(r"peak_rss_kb (\d+)", output)]
    return {"atom_steps_per_s": atoms * steps / seconds, "per_rank": local + ghost, "peak_mb": max(peaks)}


def ase_rate(atoms, model_path: Path, steps: int) -> float:
    torch.set_num_threads(2)
    atoms = atoms.copy()
    atoms.calc = REGNNCalculator(str(model_path), field=(0.0, 0.0, 0.1))
    for _ in range(2):
        atoms.rattle(1e-3)
        atoms.get_forces()
    start = time.perf_counter()
    for k in range(steps):
        atoms.rattle(1e-3, seed=k)
        atoms.get_forces()
    return len(atoms) * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 24000], help="atoms (3 per water)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=3000, help="most local atoms per model call (0: all)")
    args = parser.parse_args()
    plugin = build_plugin()
    torch.manual_seed(0)
    model = RelaxedPotential(CONFIG).eval()
    cutoff = CONFIG["num_layers"] * CONFIG["r_max"] + SKIN
    rows = []
    mb_per_atom = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_domain_model(model, root / "domain.pt")
        save_scripted(model, root / "model.pt")
        for size in args.sizes:
            box = water_box(size // 3, seed=0)
            length = box.cell.lengths()[0]
            write_data(box, root / "water.data", ["H", "O"])
            (root / "in.bench").write_text(INPUT.format(data="water.data", plugin=plugin, model="domain.pt",
                                                        skin=SKIN, cutoff=cutoff, steps=args.steps,
                                                        chunk=args.chunk))
            # one model call holds a cell of local atoms (the whole box without chunks) and every
            # atom (or periodic image) within the ghost cutoff of it
            cell = length if not args.chunk or args.chunk >= len(box) else length * (args.chunk / len(box)) ** (1 / 3)
            per_call = len(box) * ((cell + 2 * cutoff) / length) ** 3
            row = {"atoms": len(box), "box": length, "per_call": per_call}
            if mb_per_atom is not None and per_call * mb_per_atom > 0.8 * available_mb():
                row["skipped"] = (f"needs ~{per_call * mb_per_atom / 1024:.0f} GB per model call "
                                  f"({mb_per_atom:.2f} MB per evaluated atom), {available_mb() / 1024:.0f} GB free")
                rows.append(row)
                print(row["skipped"], flush=True)
                continue
            row["ranks1"] = lammps(root, 1, 2)
            if mb_per_atom is None:
                mb_per_atom = row["ranks1"]["peak_mb"] / min(row["ranks1"]["per_rank"], per_call)
            row["ranks2"] = lammps(root, 2, 1)
            row["ase"] = ase_rate(box, root / "model.pt", max(2, args.steps // 2))
            rows.append(row)
            print(row, flush=True)

    print("\n| atoms | box (Å) | ASE, 1 process × 2 threads | LAMMPS 1 rank × 2 threads | LAMMPS 2 ranks × 1 thread | "
          "local + ghost atoms per rank (1 / 2 ranks) | peak memory per rank (1 / 2 ranks) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['atoms']} | {row['box']:.1f} | – | {row['skipped']} | | | |")
            continue
        one, two = row["ranks1"], row["ranks2"]
        print(f"| {row['atoms']} | {row['box']:.1f} | {row['ase']:.0f} atom-steps/s | {one['atom_steps_per_s']:.0f} "
              f"({one['atom_steps_per_s'] / row['ase']:.2f}× ASE) | {two['atom_steps_per_s']:.0f} "
              f"({two['atom_steps_per_s'] / row['ase']:.2f}×) | {one['per_rank']:.0f} / {two['per_rank']:.0f} | "
              f"{one['peak_mb']:.0f} / {two['peak_mb']:.0f} MB |")
    print(f"\nghost cutoff {cutoff} Å (2 × r_max + skin); chunk {args.chunk} local atoms per call; "
          f"{torch.__version__}, {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()
