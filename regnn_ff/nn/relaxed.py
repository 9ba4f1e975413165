"""The symmetry-breaking source of a layer, s = θ ⊕ field, and the filter it makes from Y.

θ (the relaxed weights) is one vector per layer, fixed in the lab frame and shared by every edge,
atom and structure. Its irreps are all O(3) irreps up to ``l_relaxed`` with both parities. It is
initialised to 1 on every 0e entry and 0 elsewhere, so a fresh model is exactly equivariant.

Because s is the same for every edge of a structure, the per-edge filter h = TP_W(s, Y(r̂)) is a
fixed linear map of Y within one forward pass: :class:`SourceFilter` builds that small matrix once
per structure (once per batch when there is no field) instead of running a tensor product per edge.
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from .irreps import ExactConstants, both_parity_irreps, clebsch_gordan, couplings


class RelaxedSource(nn.Module):
    """Source of one layer: learnable θ (or the constant scalar 1) followed by the applied field.

    Args:
        l_relaxed: highest l of θ; ``None`` makes θ the fixed scalar 1 (strictly equivariant).
        mul: multiplicity of every irrep of θ.
        field_irreps: irreps of the applied field (e.g. ``"1x1o"`` for E in V/Å, ``"1x1e"`` for
            B in T), or ``None``.

    ``forward(field)`` returns ``[B, dim]`` (``[1, dim]`` when there is no field: one source for
    the whole batch).
    """

    def __init__(self, l_relaxed: Optional[int], mul: int = 1, field_irreps: Optional[str] = None):
        super().__init__()
        self.learnable = l_relaxed is not None
        self.irreps_theta = both_parity_irreps(l_relaxed, mul) if self.learnable else o3.Irreps("1x0e")
        self.irreps_field = o3.Irreps(field_irreps) if field_irreps else o3.Irreps("")
        self.irreps_out = self.irreps_theta + self.irreps_field
        init = torch.zeros(self.irreps_theta.dim)
        # Entry -> index of its non-scalar block (one block per irrep type, all copies together);
        # 0e entries point past the last block and are left out of the penalty.
        block_of = torch.zeros(self.irreps_theta.dim, dtype=torch.long)
        n_blocks = 0
        for (_, ir), sl in zip(self.irreps_theta, self.irreps_theta.slices()):
            if ir == o3.Irrep("0e"):
                init[sl] = 1.0
                block_of[sl] = -1
            else:
                block_of[sl] = n_blocks
                n_blocks += 1
        block_of[block_of < 0] = n_blocks
        self.num_blocks = n_blocks
        self.register_buffer("block_of", block_of, persistent=False)
        if self.learnable:
            self.theta = nn.Parameter(init)
        else:
            self.register_buffer("theta", init)

    def forward(self, field: Optional[torch.Tensor]) -> torch.Tensor:
        theta = self.theta.unsqueeze(0)
        if field is None:
            return theta
        return torch.cat([theta.expand(field.size(0), -1), field.to(theta.dtype)], dim=1)

    @torch.no_grad()
    def shrink_(self, step: float, theta: Optional[torch.Tensor] = None) -> None:
        """Proximal step of the group lasso on θ's non-0e blocks, in place: each block (an irrep type,
        all copies together) moves ``step · sqrt(block size)`` towards 0, and a block closer than
        that becomes exactly 0. ``theta`` defaults to this layer's own (pass an EMA copy to shrink it).

        After an Adam step, whose per-entry size is about the learning rate times how consistently
        the recent gradients agree in sign (whatever their scale), ``step = κ · lr`` keeps at zero
        every block whose gradients agree less than a fraction κ: noise in the labels no longer
        accumulates in θ, while a block the data need keeps growing.
        """
        t = self.theta if theta is None else theta
        if self.num_blocks == 0:
            return
        squares = t.new_zeros(self.num_blocks + 1).index_add(0, self.block_of, t * t)
        sizes = torch.bincount(self.block_of, minlength=self.num_blocks + 1).to(t.dtype)
        factor = (1.0 - step * sizes.sqrt() / squares.sqrt().clamp_min(1e-300)).clamp_min(0.0)
        factor[self.num_blocks] = 1.0  # the 0e entries
        t.mul_(factor[self.block_of])

    def penalty(self) -> torch.Tensor:
        """Group norm of θ's non-0e blocks, Σ_blocks ||θ_block||₂ (dimensionless; 0 if strict)."""
        squares = self.theta.new_zeros(self.num_blocks + 1).index_add(0, self.block_of, self.theta.pow(2))
        squares = squares[: self.num_blocks]
        # Exactly 0 for a zero block, with a zero (not NaN) gradient there.
        norms = torch.where(squares > 0, squares.clamp_min(1e-30).sqrt(), torch.zeros_like(squares))
        return norms.sum()


class SourceFilter(ExactConstants):
    """h = TP_W(s, Y) with shared weights W, returned as the matrix that maps Y to h.

    ``forward(s [B, dim_source]) -> [B, dim_Y, dim_h]``; then ``h_e = Y_e @ out[b(e)]``.
    The weights of the paths from each scalar (0e) source entry start at 1, so with θ = scalar
    the filter is exactly Y on its natural-parity blocks and 0 on the others.
    """

    def __init__(self, irreps_source: o3.Irreps, irreps_sh: o3.Irreps, irreps_filter: o3.Irreps):
        super().__init__()
        plist = couplings(irreps_source, irreps_sh, irreps_filter)
        n_scalar = sum(mul for mul, ir in irreps_source if ir == o3.Irrep("0e"))
        table = torch.zeros(irreps_source.dim, irreps_sh.dim, irreps_filter.dim, len(plist), dtype=torch.float64)
        weight = torch.randn(len(plist), dtype=torch.float64)
        for k, path in enumerate(plist):
            cg = path.cg
            if path.ir_a == o3.Irrep("0e"):
                # Scalar sources pass Y through unchanged at initialisation (the strict convolution).
                cg = clebsch_gordan(0, path.ir_b.l, path.ir_out.l) * n_scalar**-0.5
                weight[k] = 1.0
            table[path.a, path.b, path.out, k] = cg
        self.dim_sh = irreps_sh.dim
        self.dim_filter = irreps_filter.dim
        self.register_constant("table", table.reshape(irreps_source.dim, -1, len(plist)))
        self.weight = nn.Parameter(weight.to(torch.get_default_dtype()))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        linear_map = torch.matmul(self.table, self.weight)  # [dim_source, dim_Y * dim_h]
        return torch.matmul(source, linear_map).view(-1, self.dim_sh, self.dim_filter)
