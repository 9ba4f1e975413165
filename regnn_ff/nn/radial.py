"""Radial basis: Bessel functions times a smooth polynomial cutoff envelope."""

from __future__ import annotations

import math

import torch
from .irreps import ExactConstants


class BesselBasis(ExactConstants):
    """b_n(r) = sqrt(2/r_max) sin(nπ r / r_max) / r · u(r / r_max), n = 1..num_basis; r in Å.

    u is the polynomial envelope of order p (DimeNet/NequIP): u(1) = u'(1) = u''(1) = 0, so energies
    and forces go smoothly to zero at ``r_max``.
    """

    def __init__(self, r_max: float, num_basis: int = 8, p: int = 6):
        super().__init__()
        self.r_max = float(r_max)
        self.p = float(p)
        self.prefactor = math.sqrt(2.0 / r_max)
        self.register_constant(
            "frequencies", torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / r_max
        )

    def envelope(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        u = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x.pow(p)
            + p * (p + 2.0) * x.pow(p + 1.0)
            - p * (p + 1.0) / 2.0 * x.pow(p + 2.0)
        )
        return u * (x < 1.0).to(x.dtype)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        basis = self.prefactor * torch.sin(self.frequencies * r) / r
        return basis * self.envelope(r / self.r_max)
