"""Channel-wise (uvu) products of node features with a filter (per edge) or with the source (per atom).

Both are written as dense batched matrix products over precomputed Clebsch–Gordan blocks rather
than one small kernel per path: on a CPU the cost of e3nn models is memory traffic on per-edge
tensors, so the layout keeps one ``[E, C, Q]`` intermediate and one ``bmm``.
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from .irreps import ExactConstants, couplings


class FilteredConvolution(ExactConstants):
    """m_i = Σ_j Σ_paths R_path(r_ij) · CG(x_j, h_ij), one radial weight per channel and path.

    Args:
        irreps_in: per-channel irreps of the node features x.
        irreps_filter: irreps of the filter h (the spherical harmonics, or TP_W(source, Y)).
        irreps_out: per-channel irreps of the message.

    The filter enters through the matrix ``filter_map`` ([B, dim_Y, dim_h], see
    :class:`~regnn_ff.nn.relaxed.SourceFilter`) or directly as h = Y when it is ``None``. It is folded
    with the coupling coefficients into one ``[dim_Y, Q, dim_out]`` matrix per structure, so the per-
    edge work does not depend on how many irreps the source has.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_filter: o3.Irreps, irreps_out: o3.Irreps):
        super().__init__()
        plist = couplings(irreps_in, irreps_filter, irreps_out)
        # Slot q = (path, component of x): z[e, c, q] = R[e, c, path(q)] * x_j[e, c, comp(q)].
        q_path, q_comp = [], []
        coupling = torch.zeros(irreps_filter.dim, sum(p.ir_a.dim for p in plist), irreps_out.dim, dtype=torch.float64)
        for k, path in enumerate(plist):
            for m in range(path.ir_a.dim):
                coupling[path.b, len(q_path), path.out] = path.cg[m]
                q_path.append(k)
                q_comp.append(path.a.start + m)
        self.num_paths = len(plist)
        self.num_slots = len(q_path)
        self.dim_out = irreps_out.dim
        self.register_buffer("q_path", torch.tensor(q_path), persistent=False)
        self.register_buffer("q_comp", torch.tensor(q_comp), persistent=False)
        self.register_constant("coupling", coupling.reshape(irreps_filter.dim, -1))

    def forward(
        self,
        x: torch.Tensor,
        sh: torch.Tensor,
        radial_weights: torch.Tensor,
        edge_index: torch.Tensor,
        edge_batch: torch.Tensor,
        filter_map: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x [N, C, D_in], sh [E, dim_Y], radial_weights [E, C, P] -> messages summed per atom [N, C, D_out]."""
        num_edges = sh.size(0)
        if filter_map is None:
            coupled = torch.matmul(sh, self.coupling)
        elif filter_map.size(0) == 1:
            coupled = torch.matmul(sh, torch.matmul(filter_map[0], self.coupling))
        else:
            h = torch.bmm(sh.unsqueeze(1), filter_map[edge_batch]).squeeze(1)
            coupled = torch.matmul(h, self.coupling)
        coupled = coupled.view(num_edges, self.num_slots, self.dim_out)
        x_j = x.index_select(0, edge_index[1])
        z = x_j.index_select(2, self.q_comp) * radial_weights.index_select(2, self.q_path)
        messages = torch.bmm(z, coupled)
        out = x.new_zeros(x.size(0), x.size(1), self.dim_out)
        return out.index_add(0, edge_index[0], messages)


class NodeSourceProduct(ExactConstants):
    """Per-atom entry of the source: y_i = TP_w(x_i, s), channel-wise with learnable path weights.

    This is how an atom with no neighbours (an isolated ion in a field) still feels θ and the field.
    ``forward(x [N, C, D_in], source [B, dim_s], batch [N]) -> [N, C, D_out]``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_source: o3.Irreps, irreps_out: o3.Irreps, channels: int):
        super().__init__()
        plist = couplings(irreps_in, irreps_source, irreps_out)
        table = torch.zeros(irreps_source.dim, len(plist), irreps_in.dim, irreps_out.dim, dtype=torch.float64)
        for k, path in enumerate(plist):
            table[path.b, k, path.a, path.out] = path.cg.permute(1, 0, 2)
        self.num_paths = len(plist)
        self.dim_in = irreps_in.dim
        self.dim_out = irreps_out.dim
        self.register_constant("table", table.reshape(irreps_source.dim, -1))
        self.weight = nn.Parameter(torch.randn(channels, len(plist)))

    def forward(self, x: torch.Tensor, source: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        per_path = torch.matmul(source, self.table).view(source.size(0), self.num_paths, -1)
        maps = torch.matmul(self.weight, per_path)  # [B, C, D_in * D_out]
        maps = maps.view(source.size(0), x.size(1), self.dim_in, self.dim_out)
        if source.size(0) == 1:
            return torch.einsum("ncx,cxy->ncy", x, maps[0])
        return torch.einsum("ncx,ncxy->ncy", x, maps[batch])
