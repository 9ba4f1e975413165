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

from .irreps import ExactConstants, clebsch_gordan, fan_in, flat, offsets, paths


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
        x_irs, h_irs, o_irs = flat(irreps_in), flat(irreps_filter), flat(irreps_out)
        plist = paths(x_irs, h_irs, o_irs)
        if not plist:
            raise ValueError(f"no coupling path from {irreps_in} x {irreps_filter} to {irreps_out}")
        norm = fan_in(plist, len(o_irs))
        off_x, off_h, off_o = offsets(x_irs), offsets(h_irs), offsets(o_irs)
        # Slot q = (path, component of x): z[e, c, q] = R[e, c, path(q)] * x_j[e, c, comp(q)].
        q_path, q_comp, blocks = [], [], []
        for p, (ix, ih, io) in enumerate(plist):
            a, b, c = x_irs[ix], h_irs[ih], o_irs[io]
            cg = clebsch_gordan(a.l, b.l, c.l) * norm[p]
            for m in range(a.dim):
                q_path.append(p)
                q_comp.append(off_x[ix] + m)
                blocks.append((off_h[ih], b.dim, off_o[io], c.dim, cg[m]))
        coupling = torch.zeros(irreps_filter.dim, len(q_path), irreps_out.dim, dtype=torch.float64)
        for q, (h0, hd, o0, od, block) in enumerate(blocks):
            coupling[h0 : h0 + hd, q, o0 : o0 + od] = block
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
        x_irs, s_irs, o_irs = flat(irreps_in), flat(irreps_source), flat(irreps_out)
        plist = paths(x_irs, s_irs, o_irs)
        if not plist:
            raise ValueError(f"no coupling path from {irreps_in} x {irreps_source} to {irreps_out}")
        norm = fan_in(plist, len(o_irs))
        off_x, off_s, off_o = offsets(x_irs), offsets(s_irs), offsets(o_irs)
        table = torch.zeros(irreps_source.dim, len(plist), irreps_in.dim, irreps_out.dim, dtype=torch.float64)
        for p, (ix, i_s, io) in enumerate(plist):
            a, b, c = x_irs[ix], s_irs[i_s], o_irs[io]
            table[off_s[i_s] : off_s[i_s] + b.dim, p, off_x[ix] : off_x[ix] + a.dim, off_o[io] : off_o[io] + c.dim] = (
                clebsch_gordan(a.l, b.l, c.l).permute(1, 0, 2) * norm[p]
            )
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
