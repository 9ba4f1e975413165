"""One relaxed interaction block: source → filter → convolution (+ node-wise source) → gate + self-connection."""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from .convolution import FilteredConvolution, NodeSourceProduct
from .gate import Gate
from .irreps import both_parity_irreps
from .linear import ChannelLinear, SpeciesLinear
from .product import SymmetricProduct
from .radial import RadialMLP
from .relaxed import RelaxedSource, SourceFilter


class RelaxedInteraction(nn.Module):
    """x_i ← Gate(Lin(B_i)) + SelfConnection_species(x_i), with the density
    A_i = Σ_j TP_R(x_j, h_ij) / avg_neighbours + TP(x_i, s) and its many-body product B_i = Π(A_i).

    Args:
        irreps_in, irreps_out: per-channel irreps of the input and output features.
        irreps_density: per-channel irreps of A (default ``irreps_out``); the product reduces
            them to ``irreps_out`` (e.g. a last block with a full density but scalar output).
        channels: number of channels C (the same for every irrep).
        num_species: number of atom types (self-connection weights per type).
        irreps_sh: irreps of the spherical harmonics Y(r̂).
        source: this layer's :class:`RelaxedSource`, or ``None`` for a strictly equivariant block
            with no field (then h = Y).
        edge_entry / node_entry: where the source acts (per edge through the filter, per atom).
        num_basis, radial_hidden, radial_layers: the radial MLP R(|r|) (bias-free, so R → 0 at r_max).
        avg_num_neighbors: divides the summed messages.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        channels: int,
        num_species: int,
        irreps_sh: o3.Irreps,
        source: Optional[RelaxedSource],
        edge_entry: bool,
        node_entry: bool,
        num_basis: int,
        radial_hidden: int,
        radial_layers: int,
        avg_num_neighbors: float,
        correlation: int = 1,
        irreps_density: Optional[o3.Irreps] = None,
    ):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        self.irreps_density = o3.Irreps(irreps_density) if irreps_density is not None else self.irreps_out
        if correlation == 1 and self.irreps_density != self.irreps_out:
            raise ValueError(f"RelaxedInteraction: a density {self.irreps_density} different from the output "
                             f"{self.irreps_out} needs a many-body product (correlation > 1)")
        self.source = source
        use_filter = source is not None and edge_entry
        l_filter = max(ir.l for _, ir in irreps_sh)
        irreps_filter = both_parity_irreps(l_filter) if use_filter else irreps_sh
        self.filter = SourceFilter(source.irreps_out, irreps_sh, irreps_filter) if use_filter else None
        self.node_product = (
            NodeSourceProduct(self.irreps_in, source.irreps_out, self.irreps_density, channels)
            if source is not None and node_entry
            else None
        )
        self.linear_up = ChannelLinear(self.irreps_in, self.irreps_in, channels, channels)
        self.convolution = FilteredConvolution(self.irreps_in, irreps_filter, self.irreps_density, irreps_sh)
        num_paths = self.convolution.num_paths
        self.radial = RadialMLP([num_basis] + [radial_hidden] * radial_layers + [channels * num_paths], channels, num_paths)
        self.product = (SymmetricProduct(self.irreps_density, self.irreps_out, channels, num_species, correlation)
                        if correlation > 1 else None)
        self.linear_out = ChannelLinear(self.irreps_out, self.irreps_out, channels, channels)
        self.gate = Gate(self.irreps_out, self.irreps_out, channels)
        self.self_connection = SpeciesLinear(self.irreps_in, self.irreps_out, channels, channels, num_species)
        self.inv_avg_num_neighbors = 1.0 / float(avg_num_neighbors)

    def forward(
        self,
        x: torch.Tensor,
        species: torch.Tensor,
        batch: torch.Tensor,
        neighbour: torch.Tensor,
        sh: torch.Tensor,
        radial_basis: torch.Tensor,
        radial_row: torch.Tensor,
        field: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x [N, C, D_in] -> [N, C, D_out]; field [B, F] or None.

        Edges on the padded layout (:mod:`regnn_ff.nn.neighbours`): neighbour [N, K], sh [N·K, dim_Y];
        radial_basis [U + 1, num_basis] per unique edge (last row zero), read by slot through radial_row [N·K].
        """
        source: Optional[torch.Tensor] = None
        if self.source is not None:
            source = self.source(field)
        filter_map: Optional[torch.Tensor] = None
        if self.filter is not None and source is not None:
            filter_map = self.filter(source)
        x_up = self.linear_up(x)
        message = self.convolution(x_up, sh, self.radial(radial_basis), radial_row, neighbour, batch, filter_map)
        message = message * self.inv_avg_num_neighbors
        if self.node_product is not None and source is not None:
            message = message + self.node_product(x_up, source, batch)
        if self.product is not None:
            message = self.product(message, species)
        return self.gate(self.linear_out(message), message) + self.self_connection(x, species)
