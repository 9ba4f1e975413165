"""Every derivative of the energy in one place: forces −∂E/∂R, stress from the strain derivative,
dipole −∂E/∂𝓔. Adapters (ASE, OpenMM's TorchForce and PythonForce) all get them from here."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from ..data import keys


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t if t.requires_grad else t.detach().requires_grad_(True)


def voigt(t: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] -> [B, 6] in ASE's Voigt order (xx, yy, zz, yz, xz, xy)."""
    return torch.stack([t[:, 0, 0], t[:, 1, 1], t[:, 2, 2], t[:, 1, 2], t[:, 0, 2], t[:, 0, 1]], dim=1)


def differentiable_inputs(
    positions: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor, field: Optional[torch.Tensor],
    num_structures: int, forces: bool, stress: bool, dipole: bool,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], List[torch.Tensor]]:
    """(positions, cell, field) to evaluate the energy at, and the leaves to differentiate by.

    Stress comes from a symmetric strain ε applied to positions and cell (R → R(1 + ε)), so
    ∂E/∂ε at ε = 0 is the virial. Leaves are in the order forces, stress, dipole (those asked for).
    """
    inputs: List[torch.Tensor] = []
    if forces:
        positions = _leaf(positions)
        inputs.append(positions)
    if stress:
        strain = torch.zeros(num_structures, 3, 3, dtype=positions.dtype, device=positions.device)
        strain.requires_grad_(True)
        inputs.append(strain)
        symmetric = 0.5 * (strain + strain.transpose(1, 2))
        positions = positions + torch.bmm(positions.unsqueeze(1), symmetric[batch]).squeeze(1)
        cell = cell + torch.bmm(cell, symmetric)
    if dipole and field is not None:
        field = _leaf(field)
        inputs.append(field)
    return positions, cell, field, inputs


def derivative_outputs(
    energy: torch.Tensor, inputs: List[torch.Tensor], cell: torch.Tensor, forces: bool, stress: bool,
    dipole: bool, dipole_start: int, create_graph: bool,
) -> Dict[str, torch.Tensor]:
    """``forces`` [N, 3] (eV/Å), ``stress`` [B, 6] (eV/Å³, Voigt) and ``dipole`` [B, 3] (e·Å) from
    energies [B] (eV) and the leaves of :func:`differentiable_inputs`; ``cell`` is the unstrained one."""
    out: Dict[str, torch.Tensor] = {}
    if len(inputs) == 0:
        return out
    grads = torch.autograd.grad([energy.sum()], inputs, create_graph=create_graph, allow_unused=True)
    k = 0
    if forces:
        g = grads[k]
        out[keys.FORCES] = -g if g is not None else torch.zeros_like(inputs[k])
        k += 1
    if stress:
        g = grads[k]
        virial = g if g is not None else torch.zeros_like(inputs[k])
        volume = torch.linalg.det(cell).abs()
        out[keys.STRESS] = voigt(virial / volume.view(-1, 1, 1))
        k += 1
    if dipole:
        g = grads[k]
        d_energy = g if g is not None else torch.zeros_like(inputs[k])
        out[keys.DIPOLE] = -d_energy[:, dipole_start : dipole_start + 3]
    return out
