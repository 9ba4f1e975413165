"""Neighbour lists and graph batching against ASE's own neighbour list."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list

from checks import molecule_cluster, triclinic_crystal
from regnn_ff.data import keys
from regnn_ff.data.graph import atoms_to_graph, neighbour_list


def _pairs(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), [tuple(int(round(x)) for x in s) for s in shifts]))


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, True), (False, False, False)])
@pytest.mark.parametrize("r_max", [2.0, 5.0, 7.5])
def test_neighbour_list_matches_ase(pbc, r_max):
    atoms = triclinic_crystal()
    atoms.pbc = pbc
    i, j, shift = neighbour_list(atoms, r_max)
    ai, aj, ashift = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, r_max)
    assert _pairs(i, j, shift) == _pairs(ai, aj, ashift)
    vectors = atoms.positions[j] - atoms.positions[i] + shift @ atoms.cell.array
    assert np.linalg.norm(vectors, axis=1).max(initial=0.0) < r_max


def test_small_cell_sees_its_own_images():
    atoms = Atoms("O", positions=[[0, 0, 0]], cell=[[2.0, 0, 0], [0.7, 2.1, 0], [0.2, 0.3, 2.4]], pbc=True)
    i, j, shift = neighbour_list(atoms, 5.0)
    assert len(i) > 20 and (i == 0).all() and (j == 0).all()
    assert not (np.abs(shift).sum(axis=1) == 0).any()  # never the atom itself


def test_batched_graph_offsets_edges_and_keeps_fields():
    structures = [molecule_cluster(), triclinic_crystal()]
    field = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, -1.0]])
    graph = atoms_to_graph(structures, ["H", "C", "O"], 3.0, field, dtype=torch.float64)
    n0 = len(structures[0])
    assert graph[keys.NUM_ATOMS].tolist() == [n0, len(structures[1])]
    assert graph[keys.BATCH].tolist() == [0] * n0 + [1] * len(structures[1])
    edges = graph[keys.EDGE_INDEX]
    same = graph[keys.BATCH][edges[0]] == graph[keys.BATCH][edges[1]]
    assert bool(same.all())
    assert torch.equal(graph[keys.FIELD], torch.tensor(field))
    assert graph[keys.CELL].shape == (2, 3, 3) and graph[keys.PBC].tolist() == [[False] * 3, [True] * 3]
    assert graph[keys.SPECIES][:2].tolist() == [1, 2]  # C, O


def test_graph_errors_name_structure_and_atom():
    atoms = molecule_cluster()
    atoms[3].symbol = "Cl"
    with pytest.raises(ValueError, match=r"structure 1, atom 3: element 'Cl' is not one of the model's species \['H', 'C', 'O'\]"):
        atoms_to_graph([molecule_cluster(), atoms], ["H", "C", "O"], 3.0)
    bad = molecule_cluster()
    bad.positions[5, 1] = np.nan
    with pytest.raises(ValueError, match="structure 0, atom 5 has a non-finite position"):
        atoms_to_graph(bad, ["H", "C", "O"], 3.0)
    overlap = molecule_cluster()
    overlap.positions[4] = overlap.positions[2]
    with pytest.raises(ValueError, match="atoms 2 and 4 overlap|atoms 4 and 2 overlap"):
        atoms_to_graph(overlap, ["H", "C", "O"], 3.0)
    flat = triclinic_crystal()
    flat.cell[2] = 0.0
    with pytest.raises(ValueError, match="periodic along cell vector 2, which has zero length"):
        atoms_to_graph(flat, ["H", "C", "O"], 3.0)
    with pytest.raises(ValueError, match="structure 0 has no atoms"):
        atoms_to_graph(Atoms(), ["H"], 3.0)
    with pytest.raises(ValueError, match="no structures"):
        atoms_to_graph([], ["H"], 3.0)


def test_pair_estimate_follows_density_and_accepts_large_boxes():
    """The refusal of absurd neighbour counts must not refuse big ordinary systems: the estimate for
    a periodic box is the count for evenly spread atoms (the image bound refused 12,000 atoms)."""
    from ase.neighborlist import neighbor_list

    from regnn_ff.data.graph import MAX_PAIRS, _check_pair_count, estimated_pairs
    from regnn_ff.data.structures import water_box

    small = water_box(64)
    true_pairs = len(neighbor_list("i", small, 4.0)) / 2
    assert abs(estimated_pairs(len(small), small.cell.array, small.pbc, 4.0) / true_pairs - 1) < 0.1
    large = water_box(4000)  # 12,000 atoms
    assert estimated_pairs(len(large), large.cell.array, large.pbc, 4.0) < MAX_PAIRS / 100
    _check_pair_count(large, 4.0, 0)
