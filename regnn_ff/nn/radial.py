"""Radial part of the convolution: Bessel basis with a smooth cutoff, and the MLP on it."""

from __future__ import annotations

import math
from typing import List

import torch
from e3nn.math import normalize2mom
from torch import nn

from .irreps import ExactConstants


class BesselBasis(ExactConstants):
    """b_n(r) = sqrt(2/r_max) sin(nπ r / r_max) / r · u(r / r_max), n = 1..num_basis; r in Å.

    u is the polynomial envelope of order p (DimeNet/NequIP): u(1) = u'(1) = u''(1) = 0, so energies
    and forces go smoothly to zero at ``r_max``; beyond it the basis is exactly zero.
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


class _Weight(nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_in, fan_out))


class RadialMLP(nn.Module):
    """Bias-free MLP with normalised SiLU (e3nn's ``FullyConnectedNet``), output ``[..., P, C]``.

    The same function and parameters as ``FullyConnectedNet([num_basis, *hidden, C * P], silu)``
    read as ``[..., C, P]``, but the activation's normalisation constant is folded into the next
    weight (no elementwise pass over the per-edge hidden features for it) and the output is
    path-major, the layout the convolution consumes. Bias-free, so a zero basis (beyond the cutoff)
    gives exactly zero weights.
    """

    def __init__(self, sizes: List[int], channels: int, num_paths: int):
        super().__init__()
        if sizes[-1] != channels * num_paths:
            raise ValueError(f"radial MLP output {sizes[-1]} != channels {channels} x paths {num_paths}")
        self.layers = nn.ModuleList([_Weight(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.fan_in = [float(a) for a in sizes[:-1]]
        self.activation_scale = float(normalize2mom(torch.nn.functional.silu).cst)
        self.channels = channels
        self.num_paths = num_paths

    def forward(self, basis: torch.Tensor) -> torch.Tensor:
        """basis [rows, num_basis] -> weights [rows, num_paths, channels]."""
        x = basis
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            w = layer.weight * ((self.activation_scale if k > 0 else 1.0) / self.fan_in[k] ** 0.5)
            if k == last:
                w = w.view(w.size(0), self.channels, self.num_paths).transpose(1, 2).reshape(w.size(0), -1)
                x = torch.matmul(x, w)
            else:
                x = torch.nn.functional.silu(torch.matmul(x, w))
        return x.view(x.size(0), self.num_paths, self.channels)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before this class used e3nn's FullyConnectedNet, whose keys are
        # "layer{k}.weight" for the same tensors.
        for k in range(len(self.layers)):
            old = f"{prefix}layer{k}.weight"
            if old in state_dict:
                state_dict[f"{prefix}layers.{k}.weight"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
