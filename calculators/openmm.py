"""Add a regnn-ff model to an ``openmm.System`` as a ``TorchForce`` (default) or a ``PythonForce``.

Units on the OpenMM side: nm, kJ/mol, and the field as global parameters ``regnn_Ex``, ``regnn_Ey``,
``regnn_Ez`` in V/nm (a B-field model: ``regnn_Bx``… in T), which ``context.setParameter`` changes
mid-run. With the TorchForce backend, ``state.getEnergyParameterDerivatives()`` gives
dE/dE_field = −dipole (kJ/mol per V/nm, i.e. −dipole in e·nm × 96.485); :func:`current_dipole`
gives the dipole in e·Å with either backend.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from e3nn import o3

from regnn_ff.data.units import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV
from regnn_ff.export.torchscript import torchscript_on_purpose
from regnn_ff.nn.potential import RelaxedPotential
from regnn_ff.performance import tune_allocator as _tune_allocator

from .loader import LoadedModel, load_model
from .openmm_module import openmm_module

E_PARAMETERS = ("regnn_Ex", "regnn_Ey", "regnn_Ez")
B_PARAMETERS = ("regnn_Bx", "regnn_By", "regnn_Bz")
BACKENDS = ("torch", "python")


def field_parameters(loaded: LoadedModel):
    """(parameter names, factor from the OpenMM parameter unit to the model's field unit)."""
    irreps = loaded.metadata.get("field_irreps")
    if not irreps:
        return (), 1.0
    if o3.Irreps(irreps) == o3.Irreps("1x1o"):
        return E_PARAMETERS, 1.0 / ANGSTROM_PER_NM  # V/nm -> V/Å
    if o3.Irreps(irreps) == o3.Irreps("1x1e"):
        return B_PARAMETERS, 1.0
    raise ValueError(f"the OpenMM adapter takes an E field (1x1o) or a B field (1x1e); this model has {irreps}")


def _species_indices(loaded: LoadedModel, symbols: Sequence[str]) -> list:
    lookup = {s: k for k, s in enumerate(loaded.species)}
    for a, symbol in enumerate(symbols):
        if symbol not in lookup:
            raise ValueError(f"atom {a}: element '{symbol}' is not one of the model's species {loaded.species}")
    return [lookup[s] for s in symbols]


def _import_openmmtorch():
    import logging

    # openmmtorch imports the old 'simtk.openmm' alias, which logs a deprecation warning on the root
    # logger that users can do nothing about.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import openmmtorch
    finally:
        logging.disable(previous)
    return openmmtorch


def create_force(model: Union[str, Path, RelaxedPotential, LoadedModel], symbols: Sequence[str],
                 atoms: Optional[Sequence[int]] = None, periodic: bool = False,
                 field: Optional[Sequence[float]] = None, backend: str = "torch", tune_allocator: bool = True):
    """An OpenMM Force computing the model's energy of the given atoms.

    Args:
        model: exported ``.pt``, training ``.ckpt``, a model object, or a loaded model.
        symbols: chemical symbol of each atom the model acts on (in ``atoms`` order).
        atoms: indices of those atoms in the System (default: 0..len(symbols)-1).
        periodic: use the System's periodic box.
        field: initial field in OpenMM units (V/nm for E, T for B); default zero.
        backend: ``"torch"`` (TorchForce, TorchScript; CUDA graphs on a GPU) or ``"python"``
            (``openmm.PythonForce``). ``"torch"`` falls back to ``"python"`` with a warning when
            openmm-torch is not installed.
        tune_allocator: let malloc keep freed memory for the next step (process-wide, see
            :func:`regnn_ff.performance.tune_allocator`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    species = _species_indices(loaded, symbols)
    if tune_allocator:
        _tune_allocator()
    atoms = list(range(len(symbols))) if atoms is None else [int(a) for a in atoms]
    if len(atoms) != len(symbols):
        raise ValueError(f"{len(atoms)} atom indices but {len(symbols)} symbols")
    names, scale = field_parameters(loaded)
    values = [0.0] * len(names) if field is None else [float(v) for v in field]
    if len(values) != len(names):
        raise ValueError(f"field must have {len(names)} values for this model, got {len(values)}")
    if backend == "torch":
        try:
            openmmtorch = _import_openmmtorch()
        except ImportError:
            warnings.warn("openmm-torch is not installed: using openmm.PythonForce instead of TorchForce")
            backend = "python"
    if backend == "python":
        return _python_force(loaded, species, atoms, periodic, names, values, scale)
    module = openmm_module(loaded.module, species, atoms, loaded.r_max, periodic, loaded.dtype, len(names), scale)
    with torchscript_on_purpose():  # openmm-torch serialises the module with torch.jit.save
        force = openmmtorch.TorchForce(torch.jit.script(module))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    for name, value in zip(names, values):
        force.addGlobalParameter(name, value)
        force.addEnergyParameterDerivative(name)
    force.setName("REGNN")
    return force


class PythonComputation:
    """The function a ``PythonForce`` calls; keeps the dipole of its latest evaluation (e·Å)."""

    def __init__(self, module, names, periodic: bool):
        self.module = module
        self.names = list(names)
        self.periodic = periodic
        self.last_dipole: Optional[np.ndarray] = None

    def __call__(self, state):
        from openmm import unit

        pos = torch.tensor(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=torch.float64, requires_grad=True)
        params = state.getParameters()
        field = [torch.tensor(params[name], dtype=torch.float64, requires_grad=True) for name in self.names]
        args = [pos]
        if self.periodic:
            args.append(torch.tensor(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer), dtype=torch.float64))
        energy = self.module(*args, *field)
        grads = torch.autograd.grad(energy, [pos] + field)
        if field and self.names[0] == E_PARAMETERS[0]:
            # dE/dE[V/nm] in kJ/mol -> dipole in e·Å
            self.last_dipole = -np.array([float(g) for g in grads[1:]]) / KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM
        return float(energy.detach()), -grads[0].numpy()


def _python_force(loaded: LoadedModel, species, atoms, periodic, names, values, scale):
    import openmm

    module = openmm_module(loaded.module, species, list(range(len(atoms))), loaded.r_max, periodic,
                           loaded.dtype, len(names), scale)
    computation = PythonComputation(module, names, periodic)
    force = openmm.PythonForce(computation, dict(zip(names, values)))
    force.setParticles(atoms)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setName("REGNN")
    force.computation = computation  # keep it alive and reachable for the dipole
    return force


def current_dipole(context, force) -> np.ndarray:
    """Dipole (e·Å) of the model at the context's current positions and field, for either backend.

    Evaluates the force's group: through the energy-parameter derivatives for a ``TorchForce``
    (dipole = −dE/dE_field), from the evaluation it just ran for a ``PythonForce``.
    """
    computation = getattr(force, "computation", None)  # set on PythonForces made here
    if computation is not None:
        names = computation.names
    else:
        names = [force.getGlobalParameterName(k) for k in range(force.getNumGlobalParameters())]
    if tuple(names) != E_PARAMETERS:
        raise ValueError("this force has no E-field input (global parameters regnn_Ex/Ey/Ez), so no dipole")
    groups = {force.getForceGroup()}
    if computation is not None:
        context.getState(getEnergy=True, groups=groups)
        return np.array(computation.last_dipole)
    derivatives = context.getState(getParameterDerivatives=True, groups=groups).getEnergyParameterDerivatives()
    return -np.array([derivatives[n] for n in E_PARAMETERS]) / KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM


def add_force(system, topology, model, atoms: Optional[Sequence[int]] = None, field=None, backend: str = "torch",
              force_group: int = 0):
    """Add the model to ``system`` for ``atoms`` of ``topology`` (all by default); returns the Force."""
    all_atoms = list(topology.atoms())
    chosen = list(range(len(all_atoms))) if atoms is None else [int(a) for a in atoms]
    symbols = []
    for a in chosen:
        element = all_atoms[a].element
        if element is None:
            raise ValueError(f"atom {a} ({all_atoms[a].name}) has no element in the topology")
        symbols.append(element.symbol)
    force = create_force(model, symbols, chosen, periodic=topology.getPeriodicBoxVectors() is not None,
                         field=field, backend=backend)
    force.setForceGroup(force_group)
    system.addForce(force)
    return force


def run_molecule_md(model, atoms, steps: int = 200, field_v_per_angstrom=(0.0, 0.0, 0.5), platform: str = "CPU",
                    timestep_fs: float = 0.5, temperature: float = 300.0) -> dict:
    """Short Langevin MD of one molecule (``ase.Atoms``) with the model as a TorchForce.

    Returns ``{"ns_per_day", "platform", "dipole"}`` (dipole in e·Å from the energy-parameter
    derivatives at the end; ``None`` for models without an E-field input).
    """
    import openmm
    from openmm import unit

    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    names, scale = field_parameters(loaded)
    field = [v * ANGSTROM_PER_NM for v in field_v_per_angstrom] if names == E_PARAMETERS else None
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    force = create_force(loaded, atoms.get_chemical_symbols(), field=field)
    system.addForce(force)
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1.0 / unit.picosecond, timestep_fs * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(atoms.positions / ANGSTROM_PER_NM)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, 1)
    integrator.step(10)  # let TorchScript's profiling executor settle before timing
    start = time.perf_counter()
    integrator.step(steps)
    elapsed = time.perf_counter() - start
    dipole = current_dipole(context, force).tolist() if names == E_PARAMETERS else None
    return {"ns_per_day": steps * timestep_fs * 1e-6 / elapsed * 86400, "platform": platform, "dipole": dipole,
            "ms_per_step": elapsed / steps * 1e3}


def demo_md(model_path, echo) -> None:
    """The last step of ``regnn demo``: a short OpenMM run of the exported model (plugged in by entry point)."""
    from ase.build import molecule

    result = run_molecule_md(model_path, molecule("H2O"))
    echo(f"OpenMM ({result['platform']} platform, TorchForce): 200 Langevin steps of water in E = (0, 0, 0.5) V/Å, "
         f"{result['ms_per_step']:.1f} ms/step ({result['ns_per_day']:.1f} ns/day); "
         f"final dipole {np.round(result['dipole'], 3).tolist()} e·Å")
