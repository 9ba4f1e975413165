"""A non-scalar θ breaks exactly the symmetry it should: the model stays equivariant under θ's
stabilizer and measurably not outside it. Also the θ API and the time-reversal option."""

import numpy as np
import pytest
import torch

from checks import (
    act_on_field,
    equivariance_errors,
    mirror,
    molecule_cluster,
    rotation_about,
    set_theta_block,
    small_model,
    triclinic_crystal,
)

Z = [0.0, 0.0, 1.0]
X = [1.0, 0.0, 0.0]


def _max_error(model, atoms, g, field=None):
    return max(equivariance_errors(model, atoms, g, field).values())


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_polar_theta_along_z_keeps_c_inf_v(structure):
    model = small_model(l_relaxed=2)
    set_theta_block(model, "1o", [0.0, 0.0, 0.8])  # e3nn's l=1 order is (x, y, z)
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    for angle in (0.3, 1.7, 4.0):
        assert _max_error(model, atoms, rotation_about(Z, angle)) < 1e-9
    for azimuth in (0.0, 0.9):  # mirror planes containing z
        assert _max_error(model, atoms, mirror([np.cos(azimuth), np.sin(azimuth), 0.0])) < 1e-9
    assert _max_error(model, atoms, rotation_about(X, 0.7)) > 1e-4
    assert _max_error(model, atoms, -np.eye(3)) > 1e-4  # a polar vector is flipped by inversion


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
def test_axial_theta_along_z_keeps_c_inf_h(structure):
    model = small_model(l_relaxed=1)
    set_theta_block(model, "1e", [0.0, 0.0, 0.8])
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    for angle in (0.3, 1.7):
        assert _max_error(model, atoms, rotation_about(Z, angle)) < 1e-9
    assert _max_error(model, atoms, -np.eye(3)) < 1e-9
    assert _max_error(model, atoms, mirror(Z)) < 1e-9  # the mirror perpendicular to the axis
    assert _max_error(model, atoms, rotation_about(X, 0.7)) > 1e-4
    assert _max_error(model, atoms, mirror(X)) > 1e-4  # an axial vector is flipped by this mirror


def test_pseudoscalar_theta_breaks_only_improper_operations():
    # With natural-parity features a chirality needs a cross product of two vector features,
    # which first exists in the third layer.
    model = small_model(l_relaxed=0, num_layers=3)
    set_theta_block(model, "0o", [0.9])
    atoms = molecule_cluster()
    assert _max_error(model, atoms, rotation_about([0.3, -0.5, 0.8], 2.1)) < 1e-9
    assert _max_error(model, atoms, -np.eye(3)) > 1e-4


def test_theta_starts_scalar_and_penalty_measures_breaking():
    model = small_model(l_relaxed=2, relaxed_mul=2)
    assert model.relaxed_irreps() == "2x0e+2x0o+2x1o+2x1e+2x2e+2x2o"
    weights = model.relaxed_weights()
    assert len(weights) == 2 and weights[0].shape == (36,)
    assert torch.equal(weights[0][:2], torch.ones(2, dtype=weights[0].dtype))
    assert torch.count_nonzero(weights[0][2:]) == 0
    assert model.relaxed_penalty().item() == 0.0
    set_theta_block(model, "1o", [0.0, 0.3, 0.4, 0.0, 0.0, 0.0])
    # Group norm over the 1o block (both copies), summed over the 2 layers.
    assert model.relaxed_penalty().item() == pytest.approx(2 * 0.5, rel=1e-12)
    penalty = model.relaxed_penalty()
    penalty.backward()
    assert model.layers[0].source.theta.grad is not None


def test_relaxed_weights_api_errors():
    strict = small_model()
    assert strict.relaxed_irreps() is None and strict.relaxed_weights() == []
    with pytest.raises(ValueError, match="strictly equivariant"):
        strict.set_relaxed_weights([])
    relaxed = small_model(l_relaxed=1)
    with pytest.raises(ValueError, match="one per layer"):
        relaxed.set_relaxed_weights(relaxed.relaxed_weights()[:1])
    with pytest.raises(ValueError, match="layer 0: expected shape"):
        relaxed.set_relaxed_weights([torch.zeros(3), torch.zeros(8)])


def test_isolated_atom_feels_field_through_node_entry():
    """An atom with no neighbours can only see the source per atom (the polarisable ion)."""
    from ase import Atoms

    ion = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    node = small_model(field_irreps="1x1o", relaxed_entry="node")
    energies = [node.compute(ion, field=[0.0, 0.0, e])["energy"] for e in (0.0, 0.5, -0.5)]
    assert abs(energies[1] - energies[0]) > 1e-6
    assert energies[1] == pytest.approx(energies[2], rel=1e-12)  # even in the field, as O(3) requires
    out = node.compute(ion, field=[0.0, 0.0, 0.5], properties=["energy", "dipole"])
    assert abs(out["dipole"][2]) > 1e-7 and np.abs(out["dipole"][:2]).max() < 1e-12
    edge = small_model(field_irreps="1x1o", relaxed_entry="edge")
    assert edge.compute(ion, field=[0.0, 0.0, 0.5])["energy"] == pytest.approx(
        edge.compute(ion, field=[0.0, 0.0, 0.0])["energy"], abs=1e-14
    )


def test_time_reversal_option_makes_energy_even_in_b():
    atoms = molecule_cluster()
    b = np.array([0.3, -0.2, 0.5])
    plain = small_model(field_irreps="1x1o+1x1e")
    even = small_model(field_irreps="1x1o+1x1e", field_time_reversal=True)
    e_field = [0.1, 0.2, 0.0]
    for model, should_be_even in ((plain, False), (even, True)):
        up = model.compute(atoms, field=np.r_[e_field, b], properties=["energy", "forces"])
        down = model.compute(atoms, field=np.r_[e_field, -b], properties=["energy", "forces"])
        difference = abs(up["energy"] - down["energy"])
        if should_be_even:
            assert difference < 1e-12
            np.testing.assert_allclose(up["forces"], down["forces"], atol=1e-12)
        else:
            assert difference > 1e-7
    # The symmetrised model is still jointly equivariant.
    g = rotation_about([0.2, 0.9, -0.4], 1.3) * -1.0
    assert max(equivariance_errors(even, atoms, g, np.r_[e_field, b]).values()) < 1e-9
    moved = act_on_field(np.r_[e_field, b], "1x1o+1x1e", g)
    assert moved.shape == (6,)
