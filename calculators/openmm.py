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

from regnn_ff.data.graph import MAX_PAIRS, estimated_pairs, field_array
from regnn_ff.data.units import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV
from regnn_ff.export.load import LoadedModel, load_model
from regnn_ff.export.torchscript import torchscript_on_purpose
from regnn_ff.nn.potential import RelaxedPotential
from regnn_ff.performance import tune_allocator as _tune_allocator
from regnn_ff.validate import particle_indices, warn_field_beyond_training

from .openmm_module import openmm_module

E_PARAMETERS = ("regnn_Ex", "regnn_Ey", "regnn_Ez")
B_PARAMETERS = ("regnn_Bx", "regnn_By", "regnn_Bz")
BACKENDS = ("torch", "python")

Model = Union[str, Path, RelaxedPotential, LoadedModel]


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
    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a list of chemical symbols, one per atom, got the string {symbols!r}")
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


def _initial_field(loaded: LoadedModel, names, scale: float, field) -> list:
    """The initial values of the field parameters (OpenMM units), checked, with a warning beyond the
    training data's range."""
    if field is None:
        return [0.0] * len(names)
    values = field_array(field, loaded.metadata.get("field_irreps"), 1)
    warn_field_beyond_training(values * scale, loaded.data_range, loaded.field_unit, "OpenMM field (converted)")
    return values[0].tolist()


def create_force(model: Model, symbols: Sequence[str], atoms: Optional[Sequence[int]] = None, periodic: bool = False,
                 field: Optional[Sequence[float]] = None, backend: str = "torch", tune_allocator: bool = True,
                 num_particles: Optional[int] = None, dtype: Optional[str] = None, device: str = "cpu"):
    """An OpenMM Force computing the model's energy of the given atoms.

    Args:
        model: exported ``.pt``, training ``.ckpt``, a model object, or a loaded model.
        symbols: chemical symbol of each atom the model acts on (in ``atoms`` order).
        atoms: indices of those atoms in the System (default: 0..len(symbols)-1): integers >= 0,
            each once; below ``num_particles`` (the System's particle count) when that is given.
        periodic: use the System's periodic box.
        field: initial field in OpenMM units (V/nm for E, T for B); default zero.
        backend: ``"torch"`` (TorchForce, TorchScript; CUDA graphs on a GPU) or ``"python"``
            (``openmm.PythonForce``). ``"torch"`` falls back to ``"python"`` with a warning when
            openmm-torch is not installed.
        tune_allocator: let malloc keep freed memory for the next step (process-wide, see
            :func:`regnn_ff.performance.tune_allocator`).
        num_particles: the System's particle count, to check ``atoms`` against before OpenMM sees them.
        dtype: "float32"/"float64" (or "single"/"double"): the model's precision; default its own.
        device: where the PythonForce backend runs the model ("cpu" or "cuda"); TorchForce follows
            the OpenMM platform.

    Every bad argument is a one-line ``ValueError`` raised before any OpenMM object is built.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(periodic, (bool, np.bool_)):
        raise ValueError(f"periodic must be True or False, got {periodic!r}")
    loaded = load_model(model, device, dtype)
    species = _species_indices(loaded, symbols)
    atoms = list(range(len(species))) if atoms is None else particle_indices(atoms, num_particles)
    if len(atoms) != len(species):
        raise ValueError(f"{len(atoms)} atom indices but {len(species)} symbols")
    if num_particles is not None and len(atoms) > num_particles:
        raise ValueError(f"the model acts on {len(atoms)} atoms, but the System has {num_particles} particles")
    names, scale = field_parameters(loaded)
    values = _initial_field(loaded, names, scale, field)
    if tune_allocator:
        _tune_allocator()
    if backend == "torch":
        try:
            openmmtorch = _import_openmmtorch()
        except ImportError:
            warnings.warn("openmm-torch is not installed: using openmm.PythonForce instead of TorchForce")
            backend = "python"
    if backend == "python":
        return _python_force(loaded, species, atoms, bool(periodic), names, values, scale)
    module = openmm_module(loaded.module, species, atoms, loaded.r_max, bool(periodic), loaded.dtype, len(names), scale)
    with torchscript_on_purpose():  # openmm-torch serialises the module with torch.jit.save
        force = openmmtorch.TorchForce(torch.jit.script(module))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    for name, value in zip(names, values):
        force.addGlobalParameter(name, value)
        force.addEnergyParameterDerivative(name)
    force.setName("REGNN")
    return force


class PythonComputation:
    """The function a ``PythonForce`` calls: the model's own forces (and dipole, e·Å, kept from the
    latest evaluation), no second derivative path. Picklable (it reloads the model), so OpenMM can
    copy and serialise the force."""

    def __init__(self, loaded: LoadedModel, species, atoms, periodic: bool, names, scale: float):
        self.loaded = loaded
        self.species = list(species)
        self.atoms = list(atoms)
        self.periodic = periodic
        self.names = list(names)
        self.scale = scale
        self.properties = ["energy", "forces"] + (["dipole"] if loaded.has_dipole else [])
        self.last_dipole: Optional[np.ndarray] = None
        self._module = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_module"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._module = None

    @property
    def module(self):
        if self._module is None:
            # PythonForce hands over only its particles' positions: indices 0..n-1 of those.
            self._module = openmm_module(self.loaded.callable, self.species, list(range(len(self.atoms))),
                                         self.loaded.r_max, self.periodic, self.loaded.dtype, len(self.names),
                                         self.scale, reported=self.atoms).to(self.loaded.device)
        return self._module

    def __call__(self, state):
        from openmm import unit

        device = self.loaded.device
        pos = torch.tensor(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=torch.float64, device=device)
        box = None
        if self.periodic:
            vectors = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            check_pair_count(self.loaded, len(self.atoms), vectors)  # the box may have changed (barostat)
            box = torch.tensor(vectors, dtype=torch.float64, device=device)
        params = state.getParameters()
        field = torch.tensor([params[name] for name in self.names], dtype=torch.float64, device=device) if self.names else None
        out = self.module.model(self.module.graph(pos, box, field), self.properties)
        if "dipole" in out:
            self.last_dipole = out["dipole"][0].detach().cpu().double().numpy()
        energy = float(out["energy"].detach().sum()) * KJ_PER_MOL_PER_EV
        forces = out["forces"].detach().cpu().double().numpy() * (KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM)
        return energy, forces


def _python_force(loaded: LoadedModel, species, atoms, periodic, names, values, scale):
    import openmm

    computation = PythonComputation(loaded, species, atoms, periodic, names, scale)
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


def check_pair_count(loaded: LoadedModel, num_atoms: int, box) -> None:
    """Refuse a cutoff that gives an enormous neighbour list in this periodic box (nm, OpenMM
    Vec3s or an array): vesin would run for minutes and fill the memory."""
    from openmm import unit

    if unit.is_quantity(box):
        box = box.value_in_unit(unit.nanometer)
    vectors = [v.value_in_unit(unit.nanometer) if unit.is_quantity(v) else v for v in box]
    cell = np.array([[float(x) for x in v] for v in vectors]) * ANGSTROM_PER_NM
    estimate = estimated_pairs(num_atoms, cell, (True, True, True), loaded.r_max)
    if estimate > MAX_PAIRS:
        raise ValueError(f"r_max {loaded.r_max} Å in this periodic box ({np.round(np.diag(cell), 3).tolist()} Å) gives "
                         f"about {estimate:.2g} neighbour pairs (more than {MAX_PAIRS:.0e}); is the box right?")


def topology_symbols(topology, atoms: Optional[Sequence[int]] = None):
    """``(indices, chemical symbols)`` of ``atoms`` of ``topology`` (all by default), indices checked."""
    all_atoms = list(topology.atoms())
    chosen = list(range(len(all_atoms))) if atoms is None else particle_indices(atoms, len(all_atoms), owner="topology")
    symbols = []
    for a in chosen:
        element = all_atoms[a].element
        if element is None:
            raise ValueError(f"atom {a} ({all_atoms[a].name}) has no element in the topology")
        symbols.append(element.symbol)
    return chosen, symbols


def add_force(system, topology, model: Model, atoms: Optional[Sequence[int]] = None, field=None,
              backend: str = "torch", force_group: int = 0, dtype: Optional[str] = None, device: str = "cpu"):
    """Add the model to ``system`` for ``atoms`` of ``topology`` (all by default); returns the Force.

    The System must have a particle for every atom of the topology; ``atoms`` are checked against
    both (integers >= 0, each once, in range) before any OpenMM object is built. Other arguments as
    :func:`create_force`.
    """
    num_atoms, num_particles = topology.getNumAtoms(), system.getNumParticles()
    periodic = topology.getPeriodicBoxVectors() is not None
    if num_particles < num_atoms:
        raise ValueError(f"the System has {num_particles} particles but the topology has {num_atoms} atoms: "
                         "build the System from this topology")
    if isinstance(force_group, bool) or not isinstance(force_group, (int, np.integer)) or not 0 <= force_group <= 31:
        raise ValueError(f"force_group must be an integer from 0 to 31 (OpenMM's limit), got {force_group!r}")
    chosen, symbols = topology_symbols(topology, atoms)
    loaded = load_model(model, device, dtype)
    if periodic:
        check_pair_count(loaded, len(chosen), system.getDefaultPeriodicBoxVectors())
    force = create_force(loaded, symbols, chosen, periodic=periodic, field=field, backend=backend,
                         num_particles=num_particles)
    force.setForceGroup(int(force_group))
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

    loaded = load_model(model)
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
