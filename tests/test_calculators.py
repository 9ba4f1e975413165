"""ASE calculator, OpenMM forces (TorchForce and PythonForce, Reference and CPU platforms) and the
openmm-ml plugin, all held against each other on the same float64 model."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from checks import molecule_cluster, small_model, triclinic_crystal
from regnn_ff.calculators import REGNNCalculator, create_force, current_dipole
from regnn_ff.data.units import KJ_PER_MOL_PER_EV
from regnn_ff.export import save_scripted

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

FIELD = np.array([0.1, -0.2, 0.3])  # V/Å
EV_PER_KJ = 1.0 / KJ_PER_MOL_PER_EV


@pytest.fixture(scope="module")
def field_model():
    model = small_model(l_relaxed=1, field_irreps="1x1o")
    generator = torch.Generator().manual_seed(5)
    model.set_relaxed_weights([w + 0.2 * torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in model.relaxed_weights()])
    return model


@pytest.fixture(scope="module")
def water_model_file(tmp_path_factory):
    torch.manual_seed(2)
    model = small_model(field_irreps="1x1o", species=["H", "O"])
    path = tmp_path_factory.mktemp("model") / "water.pt"
    save_scripted(model, path)
    return path


def _context(atoms, force, platform="Reference"):
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    if atoms.pbc.any():
        system.setDefaultPeriodicBoxVectors(*(atoms.cell.array / 10.0))
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    context.setPositions(atoms.positions / 10.0)
    return context


def _energy_forces(context):
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * EV_PER_KJ / 10.0
    return energy, forces


def _ase(model, atoms, field):
    atoms = atoms.copy()
    atoms.calc = REGNNCalculator(model, field=field)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_dipole_moment()


@pytest.mark.parametrize("backend", ["torch", "python"])
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_openmm_matches_ase(field_model, backend, platform, structure):
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    e_ase, f_ase, _ = _ase(field_model, atoms, FIELD)
    force = create_force(field_model, atoms.get_chemical_symbols(), periodic=structure == "crystal",
                         field=FIELD * 10.0, backend=backend)
    energy, forces = _energy_forces(_context(atoms, force, platform))
    assert energy == pytest.approx(e_ase, rel=1e-6)
    assert np.abs(forces - f_ase).max() < 1e-6 * np.abs(f_ase).max()


@pytest.mark.parametrize("backend", ["torch", "python"])
def test_field_changed_mid_run_and_dipole(field_model, backend):
    atoms = molecule_cluster()
    force = create_force(field_model, atoms.get_chemical_symbols(), field=[0.0, 0.0, 0.0], backend=backend)
    context = _context(atoms, force)
    context.getIntegrator().step(3)  # move the atoms a little first
    moved = atoms.copy()
    moved.positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    new_field = np.array([0.3, 0.1, -0.2])
    for name, value in zip(("regnn_Ex", "regnn_Ey", "regnn_Ez"), new_field * 10.0):
        context.setParameter(name, value)
    energy, forces = _energy_forces(context)
    e_ase, f_ase, dipole = _ase(field_model, moved, new_field)
    assert energy == pytest.approx(e_ase, rel=1e-6)
    assert np.abs(forces - f_ase).max() < 1e-6 * np.abs(f_ase).max()
    if backend == "torch":
        derivatives = context.getState(getParameterDerivatives=True).getEnergyParameterDerivatives()
        d_e = np.array([derivatives[n] for n in ("regnn_Ex", "regnn_Ey", "regnn_Ez")])  # kJ/mol per V/nm
        expected = -dipole / 10.0 * KJ_PER_MOL_PER_EV  # -dipole in e·nm, times kJ/mol per eV
    else:
        d_e = force.computation.last_dipole
        expected = dipole
    assert np.abs(dipole).max() > 1e-4
    np.testing.assert_allclose(d_e, expected, rtol=1e-6, atol=1e-12)


def test_current_dipole_is_the_same_for_both_backends(field_model):
    """One call gives the dipole with either backend, equal to TorchForce's parameter derivatives."""
    atoms = molecule_cluster()
    field = np.array([1.0, -2.0, 3.0])  # V/nm
    dipoles = {}
    for backend in ("torch", "python"):
        force = create_force(field_model, atoms.get_chemical_symbols(), field=field, backend=backend)
        force.setForceGroup(3)
        context = _context(atoms, force)
        dipoles[backend] = current_dipole(context, force)
        if backend == "torch":
            derivatives = context.getState(getParameterDerivatives=True).getEnergyParameterDerivatives()
            d_e = np.array([derivatives[n] for n in ("regnn_Ex", "regnn_Ey", "regnn_Ez")])  # kJ/mol per V/nm
            np.testing.assert_allclose(dipoles[backend], -d_e / KJ_PER_MOL_PER_EV * 10.0, rtol=1e-12)
    assert np.abs(dipoles["torch"]).max() > 1e-4
    np.testing.assert_allclose(dipoles["python"], dipoles["torch"], rtol=1e-6, atol=1e-12)
    strict = create_force(small_model(), atoms.get_chemical_symbols())
    with pytest.raises(ValueError, match="no E-field input"):
        current_dipole(_context(atoms, strict), strict)


def test_subset_of_atoms_and_unknown_element(field_model):
    atoms = molecule_cluster()
    extra = Atoms("Ar", positions=[[9.0, 9.0, 9.0]])
    combined = extra + atoms  # the model acts on atoms 1..8 only
    force = create_force(field_model, atoms.get_chemical_symbols(), atoms=range(1, len(combined)), field=FIELD * 10.0)
    energy, forces = _energy_forces(_context(combined, force))
    e_ase, f_ase, _ = _ase(field_model, atoms, FIELD)
    assert energy == pytest.approx(e_ase, rel=1e-6)
    assert np.abs(forces[0]).max() == 0.0
    np.testing.assert_allclose(forces[1:], f_ase, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="atom 0: element 'Ar' is not one of the model's species"):
        create_force(field_model, combined.get_chemical_symbols())
    with pytest.raises(ValueError, match="element 'Ar' is not one of the model's species"):
        _ase(field_model, combined, FIELD)


def test_ase_calculator_properties_and_field_updates(field_model):
    crystal = triclinic_crystal()
    crystal.calc = REGNNCalculator(field_model, field=FIELD)
    ref = field_model.compute(crystal, field=FIELD, properties=["energy", "forces", "stress", "dipole"])
    assert crystal.get_potential_energy() == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(crystal.get_stress(), ref["stress"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(crystal.get_dipole_moment(), ref["dipole"], rtol=1e-10, atol=1e-14)
    before = crystal.get_potential_energy()
    crystal.calc.set(field=[0.0, 0.0, 0.0])
    assert crystal.get_potential_energy() != before  # the change invalidated the cached results
    assert "regnn" not in str(REGNNCalculator.__mro__[1].implemented_properties)
    with pytest.raises(ValueError, match=r"field must have shape \(3,\) or \(1, 3\) for field irreps 1x1o; got \(2,\)"):
        crystal.calc.set(field=[0.0, 1.0])
    with pytest.raises(ValueError, match="this model has no field input"):
        REGNNCalculator(small_model(), field=[0.0, 0.0, 1.0])


def test_nve_energy_is_conserved():
    """Velocity Verlet in float64 for 1 ps with dt = 0.5 fs on two waters that interact across the
    cutoff. With forces exactly -dE/dR and a smooth cutoff, |E(t) - E(0)| stays at the integrator's
    O(dt²) fluctuation (measured: ~5e-4 of the kinetic energy); forces inconsistent with the energy,
    or an energy that jumps when a pair crosses r_max, drift by a sizeable fraction of it. Bound: 1e-2."""
    model = small_model(l_relaxed=1, field_irreps="1x1o", species=["H", "O"], r_max=3.0)
    with torch.no_grad():
        model.readout.scale.fill_(0.5)  # forces up to ~1.4 eV/Å while the random model stays bound
    water = molecule("H2O") + molecule("H2O")
    water.positions[3:] += [2.4, 0.6, 0.3]
    force = create_force(model, water.get_chemical_symbols(), field=FIELD * 10.0)
    context = _context(water, force)
    context.getIntegrator().setStepSize(0.0005)
    context.setVelocitiesToTemperature(300.0, 1)
    totals, kinetic, largest = [], [], 0.0
    for _ in range(20):
        context.getIntegrator().step(100)
        state = context.getState(getEnergy=True, getForces=True)
        ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        totals.append(ke + state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        kinetic.append(ke)
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * EV_PER_KJ / 10.0
        largest = max(largest, float(np.abs(forces).max()))
    assert largest > 0.2  # not free flight
    assert max(abs(t - totals[0]) for t in totals) < 1e-2 * np.mean(kinetic)


def test_exported_model_in_a_fresh_process_matches_the_checkpoint(tmp_path, field_model):
    from regnn_ff.train.checkpoint import model_from_checkpoint, save_checkpoint

    save_checkpoint({"model_config": field_model.config.to_dict(), "model_state": field_model.state_dict(),
                     "ema_state": None, "dtype": "float64"}, tmp_path / "m.ckpt")
    export = subprocess.run([sys.executable, "-m", "regnn_ff.cli", "export", str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "m.pt")],
                            capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    import ase.io

    triclinic_crystal().write(tmp_path / "crystal.xyz")
    crystal = ase.io.read(tmp_path / "crystal.xyz")  # the same rounded positions the other process reads
    script = (
        "import json, sys, ase.io\n"
        "from regnn_ff.calculators import REGNNCalculator\n"
        "atoms = ase.io.read(sys.argv[1]); atoms.calc = REGNNCalculator(sys.argv[2], field=[0.1, -0.2, 0.3])\n"
        "print(json.dumps({'energy': atoms.get_potential_energy(), 'forces': atoms.get_forces().tolist(),"
        " 'stress': atoms.get_stress().tolist()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "crystal.xyz"), str(tmp_path / "m.pt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    ref = model_from_checkpoint(tmp_path / "m.ckpt").compute(crystal, field=FIELD, properties=["energy", "forces", "stress"])
    assert fresh["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(fresh["forces"], ref["forces"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fresh["stress"], ref["stress"], rtol=1e-10, atol=1e-14)


def _water_topology(n):
    from openmm import app

    topology = app.Topology()
    chain = topology.addChain()
    positions = []
    base = molecule("H2O")
    for k in range(n):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", app.element.oxygen, residue)
        h1 = topology.addAtom("H1", app.element.hydrogen, residue)
        h2 = topology.addAtom("H2", app.element.hydrogen, residue)
        topology.addBond(o, h1)
        topology.addBond(o, h2)
        positions.extend((base.positions[[0, 1, 2]] + [3.1 * k, 0.2 * k, 0.0]).tolist())
    return topology, np.array(positions)


def test_openmm_ml_create_system_and_mixed_system(water_model_file):
    from openmm import app
    from openmmml import MLPotential

    topology, positions = _water_topology(3)
    symbols = [a.element.symbol for a in topology.atoms()]
    potential = MLPotential("regnn", modelPath=str(water_model_file))

    system = potential.createSystem(topology, field=[0.0, 0.0, 2.0])
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions / 10.0)
    energy, forces = _energy_forces(context)
    atoms = Atoms(symbols, positions=positions)
    e_ase, f_ase, _ = _ase(str(water_model_file), atoms, [0.0, 0.0, 0.2])
    assert energy == pytest.approx(e_ase, rel=1e-6)
    np.testing.assert_allclose(forces, f_ase, rtol=1e-6, atol=1e-9)

    mm_system = app.ForceField("tip3p.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    mixed = potential.createMixedSystem(topology, mm_system, [0, 1, 2], forceGroup=1)
    context = openmm.Context(mixed, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions / 10.0)
    ml_energy = context.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    e_first, _, _ = _ase(str(water_model_file), atoms[:3], None)
    assert ml_energy * EV_PER_KJ == pytest.approx(e_first, rel=1e-6)
    total = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.isfinite(total) and total != ml_energy  # the classical waters are still there


def test_torch_backend_falls_back_to_python_force_without_openmm_torch(field_model, monkeypatch):
    import regnn_ff.calculators.openmm as adapter

    def missing():
        raise ImportError("no openmmtorch")

    monkeypatch.setattr(adapter, "_import_openmmtorch", missing)
    atoms = molecule_cluster()
    with pytest.warns(UserWarning, match="openmm-torch is not installed"):
        force = create_force(field_model, atoms.get_chemical_symbols(), field=FIELD * 10.0)
    assert isinstance(force, openmm.PythonForce)
    energy, _ = _energy_forces(_context(atoms, force))
    assert energy == pytest.approx(_ase(field_model, atoms, FIELD)[0], rel=1e-6)
