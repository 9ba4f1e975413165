"""Exact O(3) equivariance of every model variant whose source is scalar (θ at init) or a field
that is rotated with the structure; translation and permutation invariance."""

import numpy as np
import pytest
import torch

from checks import equivariance_errors, molecule_cluster, random_orthogonal, small_model, triclinic_crystal

VARIANTS = {
    "strict": {},
    "strict + E field": {"field_irreps": "1x1o"},
    "strict + B field": {"field_irreps": "1x1e"},
    "relaxed, theta scalar": {"l_relaxed": 2},
    "relaxed mul 2 + E field": {"l_relaxed": 2, "relaxed_mul": 2, "field_irreps": "1x1o"},
    "relaxed node-only + E and B": {"l_relaxed": 1, "relaxed_entry": "node", "field_irreps": "1x1o+1x1e"},
    "relaxed edge-only + E field": {"l_relaxed": 2, "relaxed_entry": "edge", "field_irreps": "1x1o"},
    "3 layers, l_max 3": {"num_layers": 3, "l_max": 3, "l_relaxed": 3, "field_irreps": "1x1o"},
}
FIELDS = {"1x1o": [0.2, -0.3, 0.5], "1x1e": [0.4, 0.1, -0.2], "1x1o+1x1e": [0.2, -0.3, 0.5, 0.4, 0.1, -0.2]}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("improper", [False, True], ids=["rotation", "improper"])
@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_joint_o3_equivariance(variant, improper, structure):
    config = VARIANTS[variant]
    model = small_model(**config)
    field = FIELDS[config["field_irreps"]] if "field_irreps" in config else None
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    for seed in range(3):
        g = random_orthogonal(seed, improper)
        errors = equivariance_errors(model, atoms, g, field)
        assert set(errors) >= {"energy", "forces"}
        for name, err in errors.items():
            assert err < 1e-9, f"{variant}: {name} not equivariant (relative error {err:.2e})"


def test_field_really_changes_outputs():
    """The equivariance above is not vacuous: the field does change energies and forces."""
    model = small_model(field_irreps="1x1o", l_relaxed=1)
    atoms = molecule_cluster()
    a = model.compute(atoms, field=[0.0, 0.0, 0.0])
    b = model.compute(atoms, field=[0.0, 0.0, 0.5])
    assert abs(a["energy"] - b["energy"]) > 1e-6
    assert np.abs(a["forces"] - b["forces"]).max() > 1e-6


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_translation_and_permutation_invariance(structure):
    model = small_model(l_relaxed=2, field_irreps="1x1o")
    field = [0.1, 0.2, -0.3]
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    props = ["energy", "forces", "dipole"] + (["stress"] if structure == "crystal" else [])
    ref = model.compute(atoms, field=field, properties=props)

    moved = atoms.copy()
    moved.positions += np.array([3.7, -1.2, 0.4])
    out = model.compute(moved, field=field, properties=props)
    for p in props:
        np.testing.assert_allclose(out[p], ref[p], rtol=1e-9, atol=1e-12)

    order = np.random.default_rng(1).permutation(len(atoms))
    permuted = atoms[order]
    out = model.compute(permuted, field=field, properties=props)
    np.testing.assert_allclose(out["forces"], ref["forces"][order], rtol=1e-9, atol=1e-12)
    for p in set(props) - {"forces"}:
        np.testing.assert_allclose(out[p], ref[p], rtol=1e-9, atol=1e-12)


def test_float32_equivariant_and_close_to_float64():
    m64 = small_model(l_relaxed=2, field_irreps="1x1o")
    m32 = small_model(l_relaxed=2, field_irreps="1x1o", dtype=torch.float32)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    atoms, field = triclinic_crystal(), [0.1, 0.2, -0.3]
    errors = equivariance_errors(m32, atoms, random_orthogonal(0, True), field)
    assert max(errors.values()) < 1e-4, errors
    a = m32.compute(atoms, field=field, properties=["energy", "forces"])
    b = m64.compute(atoms, field=field, properties=["energy", "forces"])
    assert a["forces"].dtype == np.float32
    assert abs(a["energy"] - b["energy"]) < 1e-4 * max(1.0, abs(b["energy"]))
    assert np.abs(a["forces"] - b["forces"]).max() < 1e-4 * max(1.0, np.abs(b["forces"]).max())
