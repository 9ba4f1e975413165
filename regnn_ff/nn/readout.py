"""Per-atom energy head with per-species scale and shift."""

from __future__ import annotations

import torch
from torch import nn


class AtomicEnergyReadout(nn.Module):
    """e_i = scale[Z_i] · MLP(scalars_i) + shift[Z_i], in eV.

    ``scale`` and ``shift`` are buffers (eV per atom; 1 and 0 by default) that training fits from the
    data (force RMS and per-species reference energies), not learned by gradient descent.
    """

    def __init__(self, channels: int, hidden: int, num_species: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.register_buffer("scale", torch.ones(num_species))
        self.register_buffer("shift", torch.zeros(num_species))

    def forward(self, scalars: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """scalars [N, C] -> atomic energies [N] (eV)."""
        return self.mlp(scalars).squeeze(-1) * self.scale[species] + self.shift[species]
