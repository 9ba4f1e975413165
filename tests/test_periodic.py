"""Periodic cells: extensivity, small cells that see their own images, batching."""

import numpy as np
import pytest
from ase import Atoms

from checks import molecule_cluster, small_model, triclinic_crystal


@pytest.mark.parametrize("config", [{}, {"l_relaxed": 2}, {"l_relaxed": 1, "field_irreps": "1x1o"}])
def test_supercell_energy_is_extensive(config):
    model = small_model(**config)
    field = [0.1, -0.2, 0.3] if "field_irreps" in config else None
    cell = triclinic_crystal()
    assert min(np.linalg.norm(cell.cell.array, axis=1)) < 2 * model.r_max  # atoms see their images
    big = cell.repeat((2, 2, 2))
    small_out = model.compute(cell, field=field, properties=["energy", "forces", "stress"])
    big_out = model.compute(big, field=field, properties=["energy", "forces", "stress"])
    assert big_out["energy"] == pytest.approx(8 * small_out["energy"], rel=1e-10)
    np.testing.assert_allclose(big_out["forces"][: len(cell)], small_out["forces"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(big_out["stress"], small_out["stress"], rtol=1e-9, atol=1e-12)


def test_single_atom_cell_interacts_with_its_images():
    model = small_model()
    atoms = Atoms("O", positions=[[0, 0, 0]], cell=[2.5, 2.5, 2.5], pbc=True)
    isolated = Atoms("O", positions=[[0, 0, 0]])
    assert abs(model.compute(atoms)["energy"] - model.compute(isolated)["energy"]) > 1e-6


def test_mixed_pbc_slab_matches_explicit_images():
    """A slab periodic in x, y only equals the same slab repeated in x and y (per atom)."""
    model = small_model(l_relaxed=2)
    slab = triclinic_crystal()
    slab.pbc = [True, True, False]
    big = slab.repeat((3, 3, 1))
    e_small = model.compute(slab)["energy"]
    e_big = model.compute(big)["energy"]
    assert e_big == pytest.approx(9 * e_small, rel=1e-10)
    full = triclinic_crystal()
    assert abs(model.compute(full)["energy"] - e_small) > 1e-6  # the z images do matter


def test_batch_equals_separate_calls_with_per_structure_fields():
    model = small_model(l_relaxed=2, field_irreps="1x1o")
    structures = [molecule_cluster(0), triclinic_crystal(1), molecule_cluster(2)]
    fields = np.array([[0.1, 0.0, 0.2], [0.0, -0.3, 0.1], [0.2, 0.2, 0.2]])
    batch = model.compute(structures, field=fields, properties=["energy", "forces", "dipole"])
    start = 0
    for k, atoms in enumerate(structures):
        single = model.compute(atoms, field=fields[k], properties=["energy", "forces", "dipole"])
        assert batch["energy"][k] == pytest.approx(single["energy"], rel=1e-12)
        np.testing.assert_allclose(batch["dipole"][k], single["dipole"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(batch["forces"][start : start + len(atoms)], single["forces"], rtol=1e-10, atol=1e-14)
        start += len(atoms)
