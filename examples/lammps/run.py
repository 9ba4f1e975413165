"""Water under a constant and a sinusoidal electric field in LAMMPS (pair_style regnn), with MPI.

1. Labels 200 frames of an 8-water cluster with GFN2-xTB (xTB MD at 300 K, each frame in a random
   field up to 0.5 V/Å) and trains a field-input model on them (about 2 minutes on 2 CPU cores);
   or takes your checkpoint (``--checkpoint``, a model with ``field_irreps: 1x1o``, species H and O).
2. Exports it for LAMMPS (``regnn export --domain``), builds the plugin, writes a periodic box of 64
   waters.
3. ``in.constant_field`` (NVE, E_z = 0.1 V/Å): prints the total-energy drift.
4. ``in.sinusoidal_field`` (NVT, E_z = 0.2 sin(2πt / 5 fs) V/Å, faster than any vibration, so the
   electrons' response is what follows): prints the dipole per V/Å (a least-squares fit of the
   dipole to the field plus a slow drift, the molecules' own motion) and the correlation of the
   dipole, drift removed, with the field.

    python examples/lammps/run.py -o lammps-water [--ranks 2] [--steps 200]

Everything lands in the output folder (cached: a second run reuses the data and the model).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
from ase.io import write

from regnn_ff.calculators.lammps import build_plugin, run_lammps, thermo, write_data
from regnn_ff.data.label import sample_configurations, write_frames
from regnn_ff.data.structures import water_box
from regnn_ff.export.torchscript import export_checkpoint
from regnn_ff.train import TrainConfig, train

HERE = Path(__file__).resolve().parent


def trained_checkpoint(out: Path) -> Path:
    """Label an 8-water cluster under random fields and train a small field-input model on it."""
    best = out / "run" / "best.ckpt"
    if best.exists():
        return best
    data = out / "water8.xyz"
    if not data.exists():
        cluster = water_box(8, seed=0)
        cluster.pbc = False
        cluster.cell = None
        write(out / "cluster8.xyz", cluster)
        print("labelling 200 frames of an 8-water cluster with GFN2-xTB under random fields ...")
        write_frames(sample_configurations(cluster, 200, field_max=0.5, seed=0), data)
    config = TrainConfig.from_dict({
        "model": {"channels": 16, "r_max": 4.0, "l_relaxed": 1, "field_irreps": "1x1o"},
        "data": {"train": str(data), "val_fraction": 0.1, "test_fraction": 0.2},
        "loss": {"energy": 1.0, "forces": 10.0, "dipole": 1.0},
        "optim": {"max_epochs": 40, "batch_size": 8, "lr": 0.01},
        "run_dir": str(out / "run"),
        "seed": 0,
    })
    return train(config) / "best.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="lammps-water", help="output folder (default: lammps-water)")
    parser.add_argument("--checkpoint", help="your own training checkpoint instead of the small trained one")
    parser.add_argument("--ranks", type=int, default=1, help="MPI ranks (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per rank (default: cores / ranks)")
    parser.add_argument("--steps", type=int, default=200, help="MD steps of 0.5 fs per run (default 200)")
    args = parser.parse_args()
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)

    checkpoint = Path(args.checkpoint) if args.checkpoint else trained_checkpoint(out)
    model = export_checkpoint(checkpoint, out / "water-domain.pt", domain=True)
    plugin = build_plugin()
    box = water_box(64, seed=0)  # 192 atoms, 12.4 Å, liquid density
    write_data(box, out / "water.data", ["H", "O"])
    for name in ("in.constant_field", "in.sinusoidal_field"):
        shutil.copy(HERE / name, out / name)
    threads = args.threads or max(1, len(os.sched_getaffinity(0)) // args.ranks)
    common = {"plugin": plugin, "model": model.name, "data": "water.data", "steps": args.steps}

    print(f"constant field: {args.steps} NVE steps of 192 atoms on {args.ranks} rank(s) ...")
    table = thermo(run_lammps("in.constant_field", args.ranks, cwd=out, threads=threads, variables=common))
    drift = (table["TotEng"][-1] - table["TotEng"][0]) / len(box) / (table["Time"][-1] - table["Time"][0])
    spread = np.ptp(table["TotEng"]) / len(box)
    print(f"  total energy drift {drift * 1e3:+.2f} meV/atom/ps (largest excursion {spread * 1e3:.2f} meV/atom); "
          f"mean dipole_z {table['c_dipole[3]'].mean():+.2f} e·Å in E_z = 0.1 V/Å")

    print(f"sinusoidal field: {args.steps} NVT steps ...")
    table = thermo(run_lammps("in.sinusoidal_field", args.ranks, cwd=out, threads=threads, variables=common))
    field, dipole, time = table["v_Ez"], table["c_dipole[3]"], table["Time"]
    trend = np.stack([np.ones_like(time), time, time**2, time**3], axis=1)
    fit = np.linalg.lstsq(np.concatenate([field[:, None], trend], axis=1), dipole, rcond=None)[0]
    response = dipole - trend @ fit[1:]
    correlation = np.corrcoef(field, response)[0, 1]
    print(f"  dipole_z follows E_z: {fit[0]:+.2f} e·Å per V/Å ({fit[0] / 64:+.3f} per molecule); "
          f"correlation with the field, slow drift removed: {correlation:.2f}")
    np.savetxt(out / "sinusoidal_field.csv", np.stack([table["Time"], field, dipole], axis=1), delimiter=",",
               header="time_ps,Ez_V_per_A,dipole_z_eA", comments="")
    print(f"wrote {out / 'sinusoidal_field.csv'}")


if __name__ == "__main__":
    main()
