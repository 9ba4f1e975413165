"""The last block's own, shorter cutoff (``last_r_max``): the pairs it drops, its receptive field,
and the checkpoints and resumes written before it existed."""

import numpy as np
import pytest
import torch

from checks import molecule_cluster, small_model, triclinic_crystal
from regnn_ff.data import keys
from regnn_ff.data.graph import atoms_to_graph, edges_mirrored
from regnn_ff.nn.config import ModelConfig


def _last_block_by_masking(model, graph):
    """The representation with every pair in the last block too, its radial basis being that of the
    shorter cutoff (exactly zero beyond it): the function the edge selection must reproduce."""
    rep = model.representation
    positions, cell = graph[keys.POSITIONS], graph[keys.CELL]
    edge_index = graph[keys.EDGE_INDEX]
    shift = torch.bmm(graph[keys.EDGE_SHIFT].unsqueeze(1), cell[graph[keys.BATCH][edge_index[0]]]).squeeze(1)
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + shift
    lengths = vectors.norm(dim=1)  # every edge its own radial row
    n = positions.size(0)
    edges = rep._padded_edges(edge_index, vectors, rep.radial_basis(lengths), edge_index.size(1), n)
    last = rep._padded_edges(edge_index, vectors, rep.last_radial_basis(lengths), edge_index.size(1), n)
    x = rep.embedding[graph[keys.SPECIES]].unsqueeze(-1)
    for k, layer in enumerate(rep.layers):
        neighbour, sh, radial, row = last if k == len(rep.layers) - 1 else edges
        x = layer(x, graph[keys.SPECIES], graph[keys.BATCH], neighbour, sh, radial, row, None)
    return x[:, :, 0]


@pytest.mark.parametrize("structure", ["molecule", "crystal"])
@pytest.mark.parametrize("order", ["mirrored", "shuffled"])
def test_last_block_sees_exactly_the_pairs_within_its_cutoff(structure, order):
    model = small_model(last_r_max=2.2)
    atoms = molecule_cluster() if structure == "molecule" else triclinic_crystal()
    graph = atoms_to_graph(atoms, ["H", "C", "O"], model.r_max, dtype=torch.float64)
    if order == "shuffled":  # not a mirrored list: every edge its own radial row
        perm = torch.randperm(graph[keys.EDGE_INDEX].size(1), generator=torch.Generator().manual_seed(0))
        graph[keys.EDGE_INDEX], graph[keys.EDGE_SHIFT] = graph[keys.EDGE_INDEX][:, perm], graph[keys.EDGE_SHIFT][perm]
    assert edges_mirrored(graph[keys.EDGE_INDEX], graph[keys.EDGE_SHIFT]) == (order == "mirrored")
    got = model.representation(graph[keys.POSITIONS], graph[keys.CELL], graph, None)[-1]
    expected = _last_block_by_masking(model, graph)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12), (got - expected).abs().max()
    # ...and the shorter cutoff changes the model: some pairs lie between the two cutoffs.
    full = small_model(last_r_max=4.0)
    assert (full.representation(graph[keys.POSITIONS], graph[keys.CELL], graph, None)[-1] - got).abs().max() > 1e-6


def test_an_atom_beyond_the_receptive_field_changes_nothing():
    """A chain A–B–C with |AB| = 3 Å and C beyond r_max (4 Å) of A: A's first block sees only B's
    species, so C reaches A only through B's features in A's last block. With a last cutoff of
    2 Å (< |AB|) moving C must leave A's energy exactly unchanged; with one of r_max it changes it."""
    from ase import Atoms

    def energy_of_a(model, bc):
        atoms = Atoms("COH", positions=[[0, 0, 0], [3.0, 0, 0], [3.0 + bc, 0.3, 0]])
        assert np.linalg.norm(atoms.positions[2]) > model.r_max
        graph = atoms_to_graph(atoms, ["H", "C", "O"], model.r_max, dtype=torch.float64)
        return model.atomic_energies(graph[keys.POSITIONS], graph[keys.CELL], graph, None)[0].item()

    short, full = small_model(last_r_max=2.0), small_model(last_r_max=4.0)
    assert energy_of_a(short, 1.5) == energy_of_a(short, 1.6)
    assert abs(energy_of_a(full, 1.5) - energy_of_a(full, 1.6)) > 1e-8
    assert short.config.receptive_field == 6.0 and full.config.receptive_field == 8.0


@pytest.mark.parametrize("value", [0.0, -1.0, 6.0, "3"])
def test_last_cutoff_outside_zero_to_r_max_is_refused(value):
    with pytest.raises(ValueError, match=r"'last_r_max' must be a cutoff in Å, > 0 and at most r_max \(5.0\)"):
        ModelConfig(species=["H"], r_max=5.0, last_r_max=value)


def test_default_last_cutoff_is_3_angstrom_or_r_max():
    assert ModelConfig(species=["H"]).last_r_max == 3.0
    assert ModelConfig(species=["H"], r_max=2.5).last_r_max == 2.5
    # Saved configs carry the resolved value, so a later default cannot change a stored model.
    assert ModelConfig(species=["H"], r_max=6.0).to_dict()["last_r_max"] == 3.0
