"""OpenMM time per step against the raw model call, and ASE MD speed, on a periodic water box.

    python bench/openmm_overhead.py [--molecules 64] [--steps 20] [--backend torch]

"Raw call": the exact TorchScript module OpenMM runs (neighbour list, energy, forces by autograd),
called from Python on the same positions. The ratio OpenMM step / raw call is what the engine adds
(integrator, copies, parameter passing). ASE: Langevin steps per second with REGNNCalculator.
All in one process, float32, CPU.
"""

from __future__ import annotations

import argparse

import numpy as np
import openmm
import torch
from ase import units
from ase.md.langevin import Langevin

from regnn_ff import RelaxedPotential
from regnn_ff.calculators import REGNNCalculator, create_force, load_model
from regnn_ff.calculators.openmm import field_parameters
from regnn_ff.calculators.openmm_module import openmm_module
from regnn_ff.data.structures import water_box
from timing import time_interleaved


def measure(atoms, model: RelaxedPotential, backend: str, steps: int) -> dict:
    """Median seconds of the raw call, one OpenMM CPU step and one ASE Langevin step (round-robin)."""
    loaded = load_model(model)
    symbols = atoms.get_chemical_symbols()
    field_nm = [0.0, 0.0, 1.0]  # V/nm

    names, scale = field_parameters(loaded)
    module = torch.jit.script(openmm_module(loaded.module, [loaded.species.index(s) for s in symbols],
                                            list(range(len(atoms))), loaded.r_max, True, loaded.dtype, len(names), scale))
    positions = torch.tensor(atoms.positions / 10.0, dtype=torch.float64)
    box = torch.tensor(atoms.cell.array / 10.0, dtype=torch.float64)
    field = [torch.tensor(v, dtype=torch.float64) for v in field_nm[: len(names)]]

    def raw_call():
        pos = positions.clone().requires_grad_(True)
        energy = module(pos, box, *field)
        torch.autograd.grad(energy, pos)

    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    system.setDefaultPeriodicBoxVectors(*(atoms.cell.array / 10.0))
    system.addForce(create_force(loaded, symbols, periodic=True, field=field_nm[: len(names)] or None, backend=backend))
    integrator = openmm.VerletIntegrator(0.0005)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(atoms.positions / 10.0)
    md_atoms = atoms.copy()
    md_atoms.calc = REGNNCalculator(model, field=[0.0, 0.0, 0.1] if names else None)
    dyn = Langevin(md_atoms, 0.5 * units.fs, temperature_K=300, friction=0.01, fixcm=False, rng=np.random.default_rng(0))
    return time_interleaved({"raw": raw_call, "openmm": lambda: integrator.step(1), "ase": lambda: dyn.run(1)}, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--backend", choices=["torch", "python"], default="torch")
    args = parser.parse_args()
    torch.manual_seed(0)
    atoms = water_box(args.molecules)
    model = RelaxedPotential(dict(species=["H", "O"], l_relaxed=2, field_irreps="1x1o")).eval()
    times = measure(atoms, model, args.backend, args.steps)
    raw, step, ase_step = times["raw"], times["openmm"], times["ase"]
    print(f"{len(atoms)}-atom water box, float32, {torch.get_num_threads()} threads, OpenMM CPU platform, backend {args.backend}")
    print(f"raw model call (neighbours + energy + forces): {raw * 1e3:8.1f} ms")
    print(f"OpenMM step:                                   {step * 1e3:8.1f} ms   ratio {step / raw:.2f}")
    print(f"ASE Langevin MD:                               {ase_step * 1e3:8.1f} ms   {1 / ase_step:.1f} steps/s")


if __name__ == "__main__":
    main()
