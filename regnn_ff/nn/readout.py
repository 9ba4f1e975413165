"""Per-atom energy head: a readout of every block's scalars, per-species scale and shift."""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


class AtomicEnergyReadout(nn.Module):
    """e_i = scale[Z_i] · (MLP(s_i^(L)) + Σ_{k<L} w_k · s_i^(k)) + shift[Z_i], in eV.

    s^(k) [N, C] are the scalar channels after block k. Reading every block (MACE-style) lets the
    early, low-body-order features enter the energy directly instead of only through later blocks.
    ``scale`` and ``shift`` are buffers (eV per atom; 1 and 0 by default) set from the data by
    :meth:`set_statistics`, not learned by gradient descent.
    """

    def __init__(self, channels: int, hidden: int, num_species: int, num_layers: int = 1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.linear = nn.ModuleList([nn.Linear(channels, 1, bias=False) for _ in range(num_layers - 1)])
        self.register_buffer("scale", torch.ones(num_species))
        self.register_buffer("shift", torch.zeros(num_species))

    def set_statistics(self, shift: Sequence[float], scale: float) -> None:
        """Per-species reference energies ``shift`` (eV, one per species) and the energy ``scale`` (eV)."""
        shift = torch.as_tensor(shift, dtype=self.shift.dtype, device=self.shift.device)
        if shift.shape != self.shift.shape:
            raise ValueError(f"set_statistics: expected {self.shift.numel()} reference energies, got {shift.numel()}")
        if not float(scale) > 0:
            raise ValueError(f"set_statistics: scale must be > 0 eV, got {scale}")
        with torch.no_grad():
            self.shift.copy_(shift)
            self.scale.fill_(float(scale))

    def forward(self, scalars: List[torch.Tensor], species: torch.Tensor) -> torch.Tensor:
        """scalars: [N, C] per block (last one last) -> atomic energies [N] (eV)."""
        energy = self.mlp(scalars[-1]).squeeze(-1)
        for k, head in enumerate(self.linear):
            energy = energy + head(scalars[k]).squeeze(-1)
        return energy * self.scale[species] + self.shift[species]
