"""``RelaxedRepresentation``: species embedding → relaxed interaction blocks → scalar features per block.

The representation knows geometry and message passing only; the energy head is
:class:`~regnn_ff.nn.readout.AtomicEnergyReadout` and the derivatives are in
:mod:`regnn_ff.nn.derivatives`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from e3nn import o3
from torch import nn

from ..data import keys
from ..data.graph import edges_mirrored
from .config import ModelConfig
from .interaction import RelaxedInteraction
from .irreps import natural_irreps
from .neighbours import pad_vectors, padded_layout, with_zero_row
from .radial import BesselBasis
from .relaxed import RelaxedSource


class RelaxedRepresentation(nn.Module):
    """Per-atom scalar features [N, C] after every block, for a graph at given positions and cell.

    Every block sums two-body messages into each atom's density A (irreps up to ``l_max``; the last
    block's up to ``last_density_l_max``), couples A with itself up to ``correlation`` (many-body
    features, :mod:`regnn_ff.nn.product`) and passes on features 0e+1o+... up to
    ``hidden_l_max``; the last block only feeds the energy and keeps scalars. Each block may carry
    a relaxed source θ ⊕ field (:mod:`regnn_ff.nn.relaxed`).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.r_max = float(c.r_max)
        irreps_sh = natural_irreps(c.l_max)
        hidden = natural_irreps(c.hidden_l_max)
        # Without a product the density is the block's output; with one it keeps every l the
        # spherical harmonics give, and the product reduces it to the features passed on.
        density = natural_irreps(c.l_max) if c.correlation > 1 else hidden
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")
        self.radial_basis = BesselBasis(c.r_max, c.num_basis, c.cutoff_p)
        self.last_r_max = float(c.last_r_max)
        self.last_radial_basis = BesselBasis(c.last_r_max, c.num_basis, c.cutoff_p)
        self.embedding = nn.Parameter(torch.randn(len(c.species), c.channels))
        layers = []
        for k in range(c.num_layers):
            irreps_in = o3.Irreps("0e") if k == 0 else hidden
            last = k == c.num_layers - 1
            irreps_out = o3.Irreps("0e") if last else hidden
            # Without a product the config keeps last_density_l_max at 0: the last density is 0e.
            block_density = natural_irreps(c.last_density_l_max) if last else density
            source = RelaxedSource(c.l_relaxed, c.relaxed_mul, c.field_irreps) if c.has_source else None
            layers.append(
                RelaxedInteraction(
                    irreps_in, irreps_out, c.channels, len(c.species), irreps_sh, source,
                    # A full last-block density with a both-parity filter would double that block's
                    # per-edge work (measured 1.9x at 3000 atoms): with "both", it takes the source per
                    # atom only, as the density is built there anyway.
                    edge_entry=c.relaxed_entry == "edge" or (c.relaxed_entry == "both" and not (last and c.last_density_l_max > 0)),
                    node_entry=c.relaxed_entry in ("node", "both"),
                    num_basis=c.num_basis, radial_hidden=c.radial_hidden, radial_layers=c.radial_layers,
                    avg_num_neighbors=c.avg_num_neighbors, correlation=c.correlation, irreps_density=block_density,
                )
            )
        self.layers = nn.ModuleList(layers)

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, data: Dict[str, torch.Tensor], field: Optional[torch.Tensor]
    ) -> List[torch.Tensor]:
        """Scalar features [N, C] after each block, for positions [N, 3] (Å), cells [B, 3, 3] (Å) and
        the field [B, F] (V/Å, T) or None; edges from ``data`` (a full neighbour list)."""
        species, batch, edge_index = data[keys.SPECIES], data[keys.BATCH], data[keys.EDGE_INDEX]
        edge_batch = batch[edge_index[0]]
        shift = torch.bmm(data[keys.EDGE_SHIFT].unsqueeze(1), cell[edge_batch]).squeeze(1)
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + shift
        num_edges, num_atoms = edge_index.size(1), positions.size(0)
        unique = num_edges
        if edges_mirrored(edge_index, data[keys.EDGE_SHIFT]):
            unique = num_edges // 2
        elif not torch.equal(torch.bincount(edge_index[0], minlength=num_atoms),
                             torch.bincount(edge_index[1], minlength=num_atoms)):
            # The last block works from the senders' side, which needs every edge both ways.
            raise ValueError("edge_index must be a full neighbour list (every pair in both directions); "
                             "an atom is the centre of a different number of edges than it is the neighbour of")
        lengths = torch.linalg.norm(vectors[:unique], dim=1)
        edges = self._padded_edges(edge_index, vectors, self.radial_basis(lengths), unique, num_atoms)
        last_edges = edges
        if self.last_r_max < self.r_max:
            # The last block sees only the pairs within its own cutoff (the same subset of both halves
            # of a mirrored list, so its layout stays mirrored).
            keep = torch.nonzero(lengths.detach() < self.last_r_max).squeeze(1)
            selected = keep if unique == num_edges else torch.cat([keep, keep + unique])
            last_edges = self._padded_edges(edge_index.index_select(1, selected), vectors.index_select(0, selected),
                                            self.last_radial_basis(lengths.index_select(0, keep)), keep.numel(), num_atoms)
        x = self.embedding[species].unsqueeze(-1)
        scalars: List[torch.Tensor] = []
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            neighbour, sh, radial, radial_row = last_edges if k == last else edges
            x = layer(x, species, batch, neighbour, sh, radial, radial_row, field)
            scalars.append(x[:, :, 0])
        return scalars

    def _padded_edges(self, edge_index: torch.Tensor, vectors: torch.Tensor, basis: torch.Tensor, unique: int,
                      num_atoms: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(neighbour [N, K], sh [N·K, dim_Y], radial basis [unique + 1, num_basis], radial_row [N·K]) of
        a full edge list whose first ``unique`` edges are all the distinct ones, with their radial ``basis``."""
        slot, neighbour, radial_row = padded_layout(edge_index, num_atoms, unique)
        # Distances (and so radial weights) of mirrored edges are equal to the last bit: one MLP row each.
        radial = with_zero_row(basis)
        sh = self.spherical_harmonics(pad_vectors(vectors, slot, neighbour.numel(), self.r_max))
        return neighbour, sh, radial, radial_row
