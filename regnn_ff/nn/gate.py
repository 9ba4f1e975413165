"""Gated nonlinearity on channel-major features: scalars through an activation, the rest gated."""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from e3nn import o3
from torch import nn

from .irreps import flat, offsets, slice_of


class Gate(nn.Module):
    """0e → SiLU, 0o → tanh (odd, so parity is kept), l > 0 → x · sigmoid(gate).

    The gates are a learned linear function of the 0e part of ``gate_source`` (the message), one
    gate per channel and non-scalar irrep.
    """

    def __init__(self, irreps: o3.Irreps, irreps_gate_source: o3.Irreps, channels: int):
        super().__init__()
        irs = flat(irreps)
        blocks: List[Tuple[int, int, int, int]] = []  # (start, dim, kind, gate index)
        n_gated = 0
        for start, ir in zip(offsets(irs), irs):
            if ir.l == 0:
                blocks.append((start, 1, 0 if ir.p == 1 else 1, -1))
            else:
                blocks.append((start, ir.dim, 2, n_gated))
                n_gated += 1
        self.blocks = blocks
        self.num_gated = n_gated
        self.channels = channels
        scalar = slice_of(flat(irreps_gate_source), o3.Irrep("0e"))
        if n_gated and scalar is None:
            raise ValueError(f"gates need a 0e input, and {irreps_gate_source} has none")
        self.gate_index = scalar.start if scalar is not None else 0
        self.scale = 1.0 / math.sqrt(channels)
        self.weight = nn.Parameter(torch.randn(channels, channels * max(n_gated, 1)))

    def forward(self, x: torch.Tensor, gate_source: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(torch.matmul(gate_source[:, :, self.gate_index], self.weight) * self.scale)
        gates = gates.view(x.size(0), self.channels, -1)
        out: List[torch.Tensor] = []
        for start, dim, kind, g in self.blocks:
            block = x[:, :, start : start + dim]
            if kind == 0:
                out.append(torch.nn.functional.silu(block))
            elif kind == 1:
                out.append(torch.tanh(block))
            else:
                out.append(block * gates[:, :, g : g + 1])
        return torch.cat(out, dim=2)
