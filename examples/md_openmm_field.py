"""OpenMM MD of a water molecule in a sinusoidal electric field set through global parameters.

    regnn demo                          # writes regnn-demo/model.pt
    python examples/md_openmm_field.py --model regnn-demo/model.pt --steps 4000 [--platform CUDA]

The field E_z(t) = A sin(2π t / period) is set with ``context.setParameter("regnn_Ez", ...)`` (V/nm)
every few steps; the dipole comes from ``getEnergyParameterDerivatives`` (−dE/dE). Writes the dipole
against time as CSV and PNG and prints ns/day.
"""

from __future__ import annotations

import argparse
import csv
import math
import time

import numpy as np
import openmm
from ase.build import molecule
from openmm import unit

from regnn_ff.calculators import create_force
from regnn_ff.data.units import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnn-demo/model.pt")
    parser.add_argument("--amplitude", type=float, default=0.8, help="field amplitude, V/Å")
    parser.add_argument("--period", type=float, default=200.0, help="field period, fs")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--every", type=int, default=10, help="update the field and record every N steps")
    parser.add_argument("--platform", default="CPU", help="Reference, CPU or CUDA")
    parser.add_argument("-o", "--output", default="md_openmm_field")
    args = parser.parse_args(argv)

    water = molecule("H2O")
    system = openmm.System()
    for mass in water.get_masses():
        system.addParticle(mass)
    system.addForce(create_force(args.model, water.get_chemical_symbols(), field=[0.0, 0.0, 0.0]))
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, args.timestep * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(args.platform))
    context.setPositions(water.positions / ANGSTROM_PER_NM)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)

    rows = []
    start = time.perf_counter()
    for step in range(0, args.steps, args.every):
        t_fs = step * args.timestep
        ez = args.amplitude * math.sin(2 * math.pi * t_fs / args.period)  # V/Å
        context.setParameter("regnn_Ez", ez * ANGSTROM_PER_NM)  # V/nm
        derivative = context.getState(getParameterDerivatives=True).getEnergyParameterDerivatives()
        dipole = [-derivative[n] / KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM for n in ("regnn_Ex", "regnn_Ey", "regnn_Ez")]
        rows.append([t_fs, ez, *dipole])
        integrator.step(args.every)
    elapsed = time.perf_counter() - start
    ns_per_day = args.steps * args.timestep * 1e-6 / elapsed * 86400

    with open(f"{args.output}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_fs", "field_z_V_per_A", "dipole_x_eA", "dipole_y_eA", "dipole_z_eA"])
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(rows)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(data[:, 0], data[:, 4], label="dipole z (e·Å)")
    ax.plot(data[:, 0], data[:, 1], label="field z (V/Å)", alpha=0.6)
    ax.set_xlabel("time (fs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{args.output}.png", dpi=100)
    correlation = float(np.corrcoef(data[:, 1], data[:, 4])[0, 1])
    print(f"{args.steps} steps on {args.platform} in {elapsed:.1f} s: {ns_per_day:.2f} ns/day; "
          f"wrote {args.output}.csv and {args.output}.png")
    print(f"correlation of dipole z with the field: {correlation:.2f}")


if __name__ == "__main__":
    main()
