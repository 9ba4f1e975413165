"""GFN2-xTB labels under a field: unit conversions checked against a direct tblite call and against
finite differences of the energy in the field."""

import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import molecule

from regnn_ff.data.datasets import read_frames
from regnn_ff.data.label import labelled, sample_configurations, xtb_singlepoint


def _direct_tblite(atoms, field_v_per_angstrom):
    from tblite.interface import Calculator
    from tblite.library import ffi

    calc = Calculator("GFN2-xTB", atoms.numbers, atoms.positions / units.Bohr)
    calc.set("verbosity", 0)
    field_au = np.ascontiguousarray(np.asarray(field_v_per_angstrom, float) * units.Bohr / units.Hartree)
    calc.add("electric-field", ffi.cast("double*", field_au.ctypes.data))
    res = calc.singlepoint()
    return res.get("energy"), res.get("gradient"), res.get("dipole")


def test_xtb_labels_match_a_direct_tblite_call_in_eV_and_angstrom():
    atoms = molecule("CH3OH")
    field = np.array([0.05, -0.2, 0.3])
    ours = xtb_singlepoint(atoms, field)
    energy_au, gradient_au, dipole_au = _direct_tblite(atoms, field)
    assert ours["energy"] == pytest.approx(energy_au * units.Hartree, rel=1e-12)
    np.testing.assert_allclose(ours["forces"], -gradient_au * units.Hartree / units.Bohr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours["dipole"], dipole_au * units.Bohr, rtol=1e-10, atol=1e-12)
    zero = xtb_singlepoint(atoms, np.zeros(3))
    assert abs(zero["energy"] - ours["energy"]) > 1e-3  # the field is really applied


def test_xtb_dipole_is_minus_the_field_derivative_of_the_energy():
    atoms = molecule("H2O")
    field = np.array([0.0, 0.1, 0.2])
    dipole = xtb_singlepoint(atoms, field)["dipole"]
    step = 1e-4
    numeric = [
        -(xtb_singlepoint(atoms, field + step * e)["energy"] - xtb_singlepoint(atoms, field - step * e)["energy"]) / (2 * step)
        for e in np.eye(3)
    ]
    # The SCF converges the energy to ~1e-9 eV, so the difference quotient carries ~1e-6 e·Å of noise.
    np.testing.assert_allclose(dipole, numeric, rtol=1e-5, atol=5e-6)
    assert abs(dipole[2]) > 0.1


def test_sampling_gives_labelled_frames_with_bounded_or_fixed_fields():
    frames = sample_configurations("H2O", 5, field_max=0.3, seed=0, stride=2)
    assert len(frames) == 5
    for frame in frames:
        assert np.linalg.norm(frame.info["field"]) <= 0.3 + 1e-12
        assert frame.calc.results["forces"].shape == (3, 3)
    fixed = sample_configurations("H2O", 3, fixed_field=[0.0, 0.0, 0.2], seed=0, stride=2)
    assert all(np.allclose(f.info["field"], [0, 0, 0.2]) for f in fixed)
    again = labelled(fixed[0], [0.0, 0.0, 0.2])
    assert again.get_potential_energy() == pytest.approx(fixed[0].get_potential_energy(), rel=1e-12)


def test_label_cli_labels_a_file_under_each_frames_field(tmp_path):
    a, b = molecule("H2O"), molecule("NH3")
    a.info["field"] = [0.0, 0.0, 0.25]
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, [a, b])
    out = tmp_path / "out.xyz"
    result = subprocess.run([sys.executable, "-m", "regnn_ff.cli", "label", str(structures), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    frames = read_frames(out, field_dim=3)
    expected = xtb_singlepoint(a, [0.0, 0.0, 0.25])
    assert frames[0].labels["energy"] == pytest.approx(expected["energy"], rel=1e-10)
    np.testing.assert_allclose(frames[0].labels["dipole"], expected["dipole"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(frames[1].field, 0.0)
    bad = subprocess.run([sys.executable, "-m", "regnn_ff.cli", "label", "--sample", "NotAMolecule", "-o", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "'NotAMolecule' is neither a structure file nor an ASE molecule name" in bad.stderr
