"""Forces, stress and dipole against central finite differences of the energy (float64), on a
model whose θ breaks symmetry in every block (so no derivative is zero by symmetry)."""

import numpy as np
import pytest
import torch

from checks import molecule_cluster, rel_err, small_model, triclinic_crystal

STEP = 1e-5


def _broken_model(**overrides):
    model = small_model(l_relaxed=2, field_irreps="1x1o", **overrides)
    generator = torch.Generator().manual_seed(3)
    model.set_relaxed_weights([w + 0.3 * torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in model.relaxed_weights()])
    return model


FIELD = np.array([0.15, -0.25, 0.1])


@pytest.mark.parametrize("last_r_max", [4.0, 2.5], ids=["one cutoff", "shorter last cutoff"])
def test_forces_match_finite_differences(last_r_max):
    model = _broken_model(last_r_max=last_r_max)
    for atoms in (molecule_cluster(), triclinic_crystal()):
        forces = model.compute(atoms, field=FIELD)["forces"]
        numeric = np.zeros_like(forces)
        for a in range(len(atoms)):
            for d in range(3):
                energies = []
                for sign in (1, -1):
                    moved = atoms.copy()
                    moved.positions[a, d] += sign * STEP
                    energies.append(model.compute(moved, field=FIELD)["energy"])
                numeric[a, d] = -(energies[0] - energies[1]) / (2 * STEP)
        assert np.abs(forces).max() > 1e-3
        assert rel_err(forces, numeric) < 1e-6


def test_stress_matches_finite_differences():
    model = _broken_model()
    atoms = triclinic_crystal()
    stress = model.compute(atoms, field=FIELD, properties=["stress"])["stress"]
    volume = atoms.get_volume()
    numeric = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[i, j] += sign * STEP
                moved = atoms.copy()
                moved.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                energies.append(model.compute(moved, field=FIELD)["energy"])
            numeric[i, j] = (energies[0] - energies[1]) / (2 * STEP) / volume
    numeric = 0.5 * (numeric + numeric.T)
    voigt = numeric[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    assert np.abs(stress).max() > 1e-4
    assert rel_err(stress, voigt) < 1e-6


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_dipole_matches_finite_differences(structure):
    model = _broken_model()
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    dipole = model.compute(atoms, field=FIELD, properties=["dipole"])["dipole"]
    numeric = np.zeros(3)
    for d in range(3):
        energies = []
        for sign in (1, -1):
            field = FIELD.copy()
            field[d] += sign * STEP
            energies.append(model.compute(atoms, field=field)["energy"])
        numeric[d] = -(energies[0] - energies[1]) / (2 * STEP)
    assert np.abs(dipole).max() > 1e-4
    assert rel_err(dipole, numeric) < 1e-6


def test_dipole_picks_the_e_field_block_of_mixed_field_irreps():
    model = small_model(field_irreps="1x0e+1x1e+1x1o")  # E is the 1o block at offset 4
    assert model.dipole_start == 4
    atoms = molecule_cluster()
    field = np.array([0.2, 0.1, -0.3, 0.2, 0.05, 0.1, -0.2])
    dipole = model.compute(atoms, field=field, properties=["dipole"])["dipole"]
    numeric = []
    for d in range(3):
        plus, minus = field.copy(), field.copy()
        plus[4 + d] += STEP
        minus[4 + d] -= STEP
        numeric.append(-(model.compute(atoms, field=plus)["energy"] - model.compute(atoms, field=minus)["energy"]) / (2 * STEP))
    assert rel_err(dipole, numeric) < 1e-6
