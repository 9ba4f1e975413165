"""Equivariant linear maps on channel-major features ``[N, C, D]``: channels mix within each irrep."""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from e3nn import o3
from torch import nn

from .irreps import flat, offsets


def _block_pairs(irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> List[Tuple[int, int, int, int]]:
    """(start_in, start_out, dim, present) for each output irrep; present=0 if the input lacks it."""
    x_irs, o_irs = flat(irreps_in), flat(irreps_out)
    off_x, off_o = offsets(x_irs), offsets(o_irs)
    pairs = []
    for io, ir in enumerate(o_irs):
        ix = next((k for k, a in enumerate(x_irs) if a == ir), -1)
        pairs.append((off_x[ix] if ix >= 0 else 0, off_o[io], ir.dim, int(ix >= 0)))
    return pairs


class ChannelLinear(nn.Module):
    """y[:, d, block] = Σ_c W_block[c, d] x[:, c, block] / sqrt(C_in) for each output irrep block.

    Output blocks whose irrep the input lacks are zero.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, c_in: int, c_out: int):
        super().__init__()
        self.pairs = _block_pairs(irreps_in, irreps_out)
        self.c_out = c_out
        self.scale = 1.0 / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.randn(len(self.pairs), c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: List[torch.Tensor] = []
        for k, (start_in, _, dim, present) in enumerate(self.pairs):
            if present == 1:
                out.append(torch.einsum("ncm,cd->ndm", x[:, :, start_in : start_in + dim], self.weight[k]))
            else:
                out.append(x.new_zeros(x.size(0), self.c_out, dim))
        return torch.cat(out, dim=2) * self.scale


class SpeciesLinear(nn.Module):
    """Like :class:`ChannelLinear` with one weight matrix per species (NequIP's self-connection)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, c_in: int, c_out: int, num_species: int):
        super().__init__()
        self.pairs = _block_pairs(irreps_in, irreps_out)
        self.c_out = c_out
        self.num_species = num_species
        self.scale = 1.0 / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.randn(len(self.pairs), c_in, num_species * c_out))

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        rows = torch.arange(n, device=x.device)
        out: List[torch.Tensor] = []
        for k, (start_in, _, dim, present) in enumerate(self.pairs):
            if present == 1:
                # One matmul for all species, then each atom keeps its own species' result.
                y = torch.einsum("ncm,cz->nzm", x[:, :, start_in : start_in + dim], self.weight[k])
                out.append(y.view(n, self.num_species, self.c_out, dim)[rows, species])
            else:
                out.append(x.new_zeros(n, self.c_out, dim))
        return torch.cat(out, dim=2) * self.scale
