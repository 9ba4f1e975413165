"""The padded-neighbour convolution and the mirrored edge lists against plain references.

The convolution picks a form from its irreps (scalar input, scalar output from the sender's side,
general); each is checked against a direct per-edge Clebsch–Gordan sum that shares none of its
layout code. The model must give the same energies and forces whatever the order of its edges.
"""

import numpy as np
import pytest
import torch
from e3nn import o3

from checks import molecule_cluster, small_model, triclinic_crystal
from regnn_ff.data import keys
from regnn_ff.data.graph import atoms_to_graph, edges_mirrored, neighbour_list
from regnn_ff.nn.convolution import FilteredConvolution
from regnn_ff.nn.irreps import both_parity_irreps, couplings, natural_irreps
from regnn_ff.nn.neighbours import pad_vectors, padded_layout, with_zero_row


def _reference_messages(irreps_in, irreps_filter, irreps_out, x, h, radial, edge_index):
    """m_i[c, o] = Σ_(i,j) Σ_paths R[e, path, c] CG_path[a, b, o] x_j[c, a] h_e[b], edge by edge."""
    out = torch.zeros(x.size(0), x.size(1), o3.Irreps(irreps_out).dim, dtype=x.dtype)
    for k, path in enumerate(couplings(irreps_in, irreps_filter, irreps_out)):
        x_j = x[edge_index[1]][:, :, path.a]
        term = torch.einsum("ecA,eB,ABO,ec->ecO", x_j, h[:, path.b], path.cg.to(x.dtype), radial[:, k])
        out[:, :, path.out] += torch.zeros_like(out[:, :, path.out]).index_add(0, edge_index[0], term)
    return out


def _symmetric_graph(num_atoms=7, seed=0):
    """A random symmetric graph (each pair both ways, uneven degrees, one isolated atom)."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(num_atoms - 1) for b in range(a + 1, num_atoms - 1) if rng.uniform() < 0.6]
    edges = torch.tensor(pairs + [(b, a) for a, b in pairs]).T
    positions = torch.tensor(rng.normal(size=(num_atoms, 3)))
    return edges, positions[edges[1]] - positions[edges[0]]


@pytest.mark.parametrize(
    "irreps_in, irreps_out, relaxed",
    [("0e", "0e+1o+2e", False), ("0e", "0e+1o+2e", True), ("0e+1o+2e", "0e", False),
     ("0e+1o+2e", "0e", True), ("0e+1o+2e", "0e+1o+2e", True), ("0e", "0e", False)],
)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block_elements", [1 << 21, 1], ids=["one block", "atom by atom"])
def test_every_form_matches_the_per_edge_sum(irreps_in, irreps_out, relaxed, symmetric, block_elements):
    torch.manual_seed(0)
    irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
    irreps_sh = natural_irreps(2)
    irreps_filter = both_parity_irreps(2) if relaxed else irreps_sh
    conv = FilteredConvolution(irreps_in, irreps_filter, irreps_out, irreps_sh, symmetric_edges=symmetric,
                               block_elements=block_elements).double()
    channels, paths = 4, conv.num_paths
    edge_index, vectors = _symmetric_graph()
    num_atoms = 7
    x = torch.randn(num_atoms, channels, irreps_in.dim, dtype=torch.float64)
    sh = o3.spherical_harmonics(irreps_sh, vectors, normalize=True, normalization="component")
    # Radial weights depend on the distance only (as in the model), so reversed edges share them.
    radial = torch.sin(vectors.norm(dim=1, keepdim=True) * torch.arange(1, paths * channels + 1)).view(-1, paths, channels)
    filter_map = torch.randn(1, irreps_sh.dim, irreps_filter.dim, dtype=torch.float64) if relaxed else None
    h = sh @ filter_map[0] if relaxed else sh

    slot, neighbour, row = padded_layout(edge_index, num_atoms, edge_index.size(1))
    padded_sh = o3.spherical_harmonics(irreps_sh, pad_vectors(vectors, slot, neighbour.numel(), 4.5),
                                       normalize=True, normalization="component")
    radial_table = with_zero_row(radial.reshape(radial.size(0), -1)).view(-1, paths, channels)
    got = conv(x, padded_sh, radial_table, row, neighbour, torch.zeros(num_atoms, dtype=torch.long), filter_map)
    expected = _reference_messages(irreps_in, irreps_filter, irreps_out, x, h, radial, edge_index)
    assert conv.scalar_in == (irreps_in.dim == 1)
    assert conv.scalar_out == (symmetric and irreps_out.dim == 1 and irreps_in.dim > 1)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12), (got - expected).abs().max()
    assert got[-1].abs().max() == 0  # the isolated atom receives nothing


def test_graphs_are_mirrored_and_batches_stay_mirrored():
    structures = [molecule_cluster(), triclinic_crystal(), molecule_cluster(1)]
    for atoms in structures:
        i, j, shift = neighbour_list(atoms, 3.0)
        half = len(i) // 2
        assert len(i) == 2 * half and (i[half:] == j[:half]).all() and (shift[half:] == -shift[:half]).all()
    graph = atoms_to_graph(structures, ["H", "C", "O"], 3.0, dtype=torch.float64)
    assert edges_mirrored(graph[keys.EDGE_INDEX], graph[keys.EDGE_SHIFT])
    shuffled = torch.randperm(graph[keys.EDGE_INDEX].size(1))
    assert not edges_mirrored(graph[keys.EDGE_INDEX][:, shuffled], graph[keys.EDGE_SHIFT][shuffled])


@pytest.mark.parametrize("config", [{}, {"l_relaxed": 2, "field_irreps": "1x1o"}, {"num_layers": 3, "l_relaxed": 1}])
def test_edge_order_does_not_change_the_model(config):
    """A shuffled edge list (no mirrored halves: one radial row per edge) gives the same outputs."""
    model = small_model(**config)
    structures = [triclinic_crystal(), molecule_cluster()]
    field = np.array([[0.1, -0.2, 0.3], [0.0, 0.4, 0.0]]) if config.get("field_irreps") else None
    graph = atoms_to_graph(structures, model.species_names, model.r_max, field, dtype=torch.float64)
    order = torch.randperm(graph[keys.EDGE_INDEX].size(1), generator=torch.Generator().manual_seed(1))
    shuffled = dict(graph, **{keys.EDGE_INDEX: graph[keys.EDGE_INDEX][:, order], keys.EDGE_SHIFT: graph[keys.EDGE_SHIFT][order]})
    a = model(graph, [keys.ENERGY, keys.FORCES, keys.STRESS])
    b = model(shuffled, [keys.ENERGY, keys.FORCES, keys.STRESS])
    for name in (keys.ENERGY, keys.FORCES, keys.STRESS):
        assert torch.allclose(a[name], b[name], rtol=1e-12, atol=1e-12), name


def test_a_one_way_edge_list_is_refused():
    model = small_model()
    graph = atoms_to_graph(triclinic_crystal(), model.species_names, model.r_max, dtype=torch.float64)
    half = graph[keys.EDGE_INDEX].size(1) // 2
    one_way = dict(graph, **{keys.EDGE_INDEX: graph[keys.EDGE_INDEX][:, :half], keys.EDGE_SHIFT: graph[keys.EDGE_SHIFT][:half]})
    with pytest.raises(ValueError, match="full neighbour list"):
        model(one_way, [keys.ENERGY])
