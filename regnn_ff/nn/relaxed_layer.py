"""A relaxed layer on its own: node-level irreps in and out, optional edges, optional gate.

The same parts as the potential's interaction block (source θ, filter, convolution, node-wise
product) without species or energy readout, for symmetry-breaking experiments on any graph (or on
single nodes: then only the node-wise product acts).
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from .convolution import FilteredConvolution, NodeSourceProduct
from .gate import Gate
from .irreps import both_parity_irreps, natural_irreps
from .linear import ChannelLinear
from .neighbours import pad_vectors, padded_layout, with_zero_row
from .radial import BesselBasis, RadialMLP
from .relaxed import RelaxedSource, SourceFilter


class RelaxedLayer(nn.Module):
    """x_i' = Lin( TP(x_i, θ) + Σ_j R(|r_ij|) TP(x_j, TP_W(θ, Y(r̂_ij))) ) (+ gate) + Lin_self(x_i).

    Args:
        irreps_in, irreps_out: per-channel irreps (e.g. ``"0e+1o"``); features are ``[N, C, D]``.
        channels_in, channels_out: channels C before and after.
        l_relaxed: highest l of θ (both parities); ``None`` gives a strictly equivariant layer.
        l_sh: highest l of the spherical harmonics of edge directions; ``None`` = no edges.
        r_max: cutoff (Å or the graph's unit) of the radial functions when there are edges.
        gate: apply the gated nonlinearity (0e: SiLU, 0o: tanh, l > 0: sigmoid gates).
    """

    def __init__(self, irreps_in: str, irreps_out: str, channels_in: int = 1, channels_out: int = 1,
                 l_relaxed: Optional[int] = 1, l_sh: Optional[int] = None, r_max: float = 2.0,
                 gate: bool = False, num_basis: int = 8):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.source = RelaxedSource(l_relaxed)
        self.linear_in = ChannelLinear(self.irreps_in, self.irreps_in, channels_in, channels_out)
        self.node_product = NodeSourceProduct(self.irreps_in, self.source.irreps_out, self.irreps_out, channels_out)
        self.edges = l_sh is not None
        if self.edges:
            irreps_sh = natural_irreps(l_sh)
            irreps_filter = both_parity_irreps(l_sh) if l_relaxed is not None else irreps_sh
            self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")
            self.filter = SourceFilter(self.source.irreps_out, irreps_sh, irreps_filter)
            # Any edge list is accepted here, so no form that relies on every edge's reverse.
            self.convolution = FilteredConvolution(self.irreps_in, irreps_filter, self.irreps_out, irreps_sh,
                                                   symmetric_edges=False)
            self.radial_basis = BesselBasis(r_max, num_basis)
            paths = self.convolution.num_paths
            self.radial = RadialMLP([num_basis, 16, channels_out * paths], channels_out, paths)
            self.r_max = float(r_max)
        self.linear_out = ChannelLinear(self.irreps_out, self.irreps_out, channels_out, channels_out)
        self.gate = Gate(self.irreps_out, self.irreps_out, channels_out) if gate else None
        self.self_connection = ChannelLinear(self.irreps_in, self.irreps_out, channels_in, channels_out)
        self.channels = channels_out

    def forward(self, x: torch.Tensor, edge_index: Optional[torch.Tensor] = None,
                vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [N, C_in, D_in]; edge_index [2, E] (receiver, sender); vectors [E, 3] = r_sender − r_receiver."""
        source = self.source(None)
        up = self.linear_in(x)
        message = self.node_product(up, source, torch.zeros(x.size(0), dtype=torch.long, device=x.device))
        if self.edges and edge_index is not None and vectors is not None:
            slot, neighbour, radial_row = padded_layout(edge_index, x.size(0), vectors.size(0))
            sh = self.spherical_harmonics(pad_vectors(vectors, slot, neighbour.numel(), self.r_max))
            radial = self.radial(with_zero_row(self.radial_basis(vectors.norm(dim=1))))
            atom_batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
            message = message + self.convolution(up, sh, radial, radial_row, neighbour, atom_batch, self.filter(source))
        out = self.linear_out(message)
        if self.gate is not None:
            out = self.gate(out, message)
        return out + self.self_connection(x)
