"""Langevin MD of a water molecule in a static electric field with the ASE calculator.

    regnn demo                          # writes regnn-demo/model.pt (a field-input water model)
    python examples/md_ase_field.py --model regnn-demo/model.pt --field 0 0 0.5 --steps 2000

Writes the trajectory (extxyz, with energy, forces and dipole per frame) and prints the mean dipole
along the field and the MD speed.
"""

from __future__ import annotations

import argparse
import time

import ase.io
import numpy as np
from ase import units
from ase.build import molecule
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from regnn_ff.calculators import REGNNCalculator


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnn-demo/model.pt")
    parser.add_argument("--field", type=float, nargs=3, default=[0.0, 0.0, 0.5], metavar=("EX", "EY", "EZ"), help="V/Å")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--every", type=int, default=20, help="write a frame every N steps")
    parser.add_argument("-o", "--output", default="md_ase_field.xyz")
    args = parser.parse_args(argv)

    atoms = molecule("H2O")
    atoms.calc = REGNNCalculator(args.model, field=args.field)
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(0))
    atoms.set_constraint(FixCom())  # a net force from the field must not drift the molecule away
    dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature, friction=0.01,
                   fixcm=False, rng=np.random.default_rng(1))
    frames, dipoles = [], []

    def record():
        frame = atoms.copy()
        frame.calc = None
        frame.info.update(energy=atoms.get_potential_energy(), dipole=atoms.get_dipole_moment(), field=list(args.field))
        frame.arrays["forces"] = atoms.get_forces()
        frames.append(frame)
        dipoles.append(atoms.get_dipole_moment())

    dyn.attach(record, interval=args.every)
    start = time.perf_counter()
    dyn.run(args.steps)
    elapsed = time.perf_counter() - start
    ase.io.write(args.output, frames)
    direction = np.asarray(args.field) / max(np.linalg.norm(args.field), 1e-12)
    print(f"{args.steps} steps in {elapsed:.1f} s ({args.steps / elapsed:.0f} steps/s); {len(frames)} frames -> {args.output}")
    print(f"mean dipole along the field: {np.mean(np.asarray(dipoles) @ direction):.4f} e·Å")


if __name__ == "__main__":
    main()
