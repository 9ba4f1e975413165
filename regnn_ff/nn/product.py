"""Many-body (ACE/MACE-style) product of each atom's density with itself, channel-wise.

A message-passing block sums two-body terms: A_i = Σ_j R(r_ij) x_j ⊗ Y(r̂_ij). Coupling A_i with
itself ν times gives (ν+1)-body features of atom i at no per-edge cost — the work is per atom and
per channel, so it is cheap next to the convolution. The couplings are built recursively
(A⊗A into intermediate irreps, then ⊗A again) with one learnable weight per species, channel and
coupling path, which spans the same space as a symmetric contraction of the same order.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from e3nn import o3
from torch import nn

from .irreps import ExactConstants, clebsch_gordan, flat, offsets


def _symmetric_pairs(a: List[o3.Irrep], l_cap: int) -> List[Tuple[int, int, o3.Irrep]]:
    """(i, j, L) for i ≤ j and every L the pair couples to (l ≤ ``l_cap``) that A⊗A does not cancel.

    For i = j the coupling to L is antisymmetric in the two factors when l_i + l_j + L is odd, so
    it vanishes identically (a vector's cross product with itself) and is left out.
    """
    found = []
    for i, ir_i in enumerate(a):
        for j in range(i, len(a)):
            ir_j = a[j]
            for ir in ir_i * ir_j:
                if ir.l > l_cap or (i == j and (2 * ir_i.l + ir.l) % 2 == 1):
                    continue
                found.append((i, j, ir))
    return found


class SymmetricProduct(ExactConstants):
    """B_i = Σ_{ν=1..correlation} Σ_paths W[z_i, c, path] · (A_i^{⊗ν})_path, channel by channel.

    Args:
        irreps_in: per-channel irreps of the density A (``[N, C, irreps_in.dim]``).
        irreps_out: per-channel irreps of B.
        channels: number of channels C.
        num_species: number of atom types (the weights depend on the type of atom i, as in ACE).
        correlation: highest power ν of A (1: linear, 2: three-body per block, 3: four-body).

    ``forward(A [N, C, D_in], species [N]) -> [N, C, D_out]``; equivariant for any weights.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, channels: int, num_species: int,
                 correlation: int = 3):
        super().__init__()
        if correlation not in (1, 2, 3):
            raise ValueError(f"SymmetricProduct: correlation must be 1, 2 or 3, got {correlation}")
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        a, out = flat(self.irreps_in), flat(self.irreps_out)
        self.correlation = correlation
        self.dim_in, self.dim_out = self.irreps_in.dim, self.irreps_out.dim
        off_a, off_o = offsets(a), offsets(out)
        l_cap = max(ir.l for ir in a + out)

        # Basis instances: (level, irrep, start) on the concatenated component axis [A | P2 | P3].
        instances: List[Tuple[o3.Irrep, int]] = [(ir, s) for ir, s in zip(a, off_a)]
        pairs = _symmetric_pairs(a, l_cap) if correlation >= 2 else []
        dim_p2 = sum(ir.dim for _, _, ir in pairs)
        t2 = torch.zeros(self.dim_in, self.dim_in, max(dim_p2, 1), dtype=torch.float64)
        p2_irreps, start = [], 0
        for i, j, ir in pairs:
            t2[off_a[i] : off_a[i] + a[i].dim, off_a[j] : off_a[j] + a[j].dim, start : start + ir.dim] = (
                clebsch_gordan(a[i].l, a[j].l, ir.l))
            p2_irreps.append((ir, start))
            instances.append((ir, self.dim_in + start))
            start += ir.dim
        triples = []
        if correlation >= 3:
            for k, (ir_p, s_p) in enumerate(p2_irreps):
                for i, ir_i in enumerate(a):
                    for ir in ir_p * ir_i:
                        if ir in out:
                            triples.append((s_p, ir_p, off_a[i], ir_i, ir))
        dim_p3 = sum(ir.dim for *_, ir in triples)
        t3 = torch.zeros(max(dim_p2, 1), self.dim_in, max(dim_p3, 1), dtype=torch.float64)
        start = 0
        for s_p, ir_p, s_a, ir_a, ir in triples:
            t3[s_p : s_p + ir_p.dim, s_a : s_a + ir_a.dim, start : start + ir.dim] = clebsch_gordan(ir_p.l, ir_a.l, ir.l)
            instances.append((ir, self.dim_in + dim_p2 + start))
            start += ir.dim
        self.dim_p2, self.dim_p3 = dim_p2, dim_p3

        # Only instances whose irrep is an output irrep get a weight; each feeds its output slot.
        used = [(ir, s) for ir, s in instances if ir in out]
        missing = [ir for ir in out if ir not in [ir_u for ir_u, _ in used]]
        if missing:
            raise ValueError(f"SymmetricProduct: {self.irreps_in} -> {self.irreps_out} with correlation {correlation} "
                             f"cannot produce 1x{missing[0]}")
        width = self.dim_in + dim_p2 + dim_p3
        collect = torch.zeros(width, self.dim_out, dtype=torch.float64)
        path_of = torch.zeros(width, dtype=torch.long)  # components of unused instances: any path, collected by 0
        per_out = {ir: sum(1 for ir_u, _ in used if ir_u == ir) for ir in out}
        for k, (ir, s) in enumerate(used):
            o = off_o[out.index(ir)]
            collect[s : s + ir.dim, o : o + ir.dim] = torch.eye(ir.dim, dtype=torch.float64) / math.sqrt(per_out[ir])
            path_of[s : s + ir.dim] = k
        self.num_paths = len(used)
        # The weights are folded into the coupling tables once per call ([S, C, ...], no per-atom
        # work), so per atom and channel B = A·W1 + Σ_i A_i (P2·W3)_i + P2·W2: two small batched
        # matrix products; neither the [N·C, P2·A] third-order basis nor [N, C, width] weights are formed.
        one_hot = nn.functional.one_hot(path_of, self.num_paths).to(torch.float64)  # [width, paths]
        by_path = one_hot.t().unsqueeze(-1) * collect.unsqueeze(0)  # [paths, width, D_out]
        d, p2, p3 = self.dim_in, dim_p2, dim_p3
        folded = [by_path[:, :d].reshape(self.num_paths, -1)]  # W1[i, o]
        if correlation >= 2:
            w2 = by_path[:, d : d + p2].unsqueeze(2)  # [paths, P2, 1, D_out]
            if correlation >= 3:
                w3 = torch.einsum("xiw,pwo->pxio", t3[:p2, :, :p3], by_path[:, d + p2 :])  # [paths, P2, A, D_out]
                w2 = torch.cat([w3, w2], dim=2)
            folded.append(w2.reshape(self.num_paths, -1))  # per x: [W3[x, i, o] for i] then W2[x, o]
        self.register_constant("t2", t2.reshape(self.dim_in * self.dim_in, -1))
        self.register_constant("folded", torch.cat(folded, dim=1))
        self.weight = nn.Parameter(torch.randn(num_species, channels, self.num_paths))

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        n, c, d, p2, out = x.size(0), x.size(1), self.dim_in, self.dim_p2, self.dim_out
        cubic = d if self.correlation >= 3 else 0
        tables = torch.matmul(self.weight, self.folded)  # [S, C, W1 | W3,W2]
        result = x.new_zeros(n, c, out)
        for s in range(tables.size(0)):
            rows = torch.nonzero(species == s).squeeze(1)
            if rows.numel() == 0:
                continue
            a = x.index_select(0, rows).transpose(0, 1)  # [C, n_s, D_in]
            y = torch.bmm(a, tables[s, :, : d * out].reshape(c, d, out))
            if self.correlation >= 2:
                flat_a = a.reshape(-1, d)
                pairs = torch.matmul((flat_a.unsqueeze(2) * flat_a.unsqueeze(1)).view(-1, d * d), self.t2)
                h = torch.bmm(pairs[:, :p2].reshape(c, -1, p2), tables[s, :, d * out :].reshape(c, p2, (cubic + 1) * out))
                # split, not slices: autograd joins the parts' gradients instead of zeroing h per slice
                h_cubic, h_square = torch.split(h.view(c, -1, cubic + 1, out), [cubic, 1], dim=2)
                y = y + h_square.squeeze(2)
                if cubic > 0:
                    y = y + (a.unsqueeze(-1) * h_cubic).sum(2)
            result = result.index_copy(0, rows, y.transpose(0, 1))
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out}, correlation {self.correlation}, {self.num_paths} paths)"
