"""The model as a spatially decomposed MD engine (LAMMPS) calls it: one domain's local atoms plus
ghost atoms, and a neighbour list, instead of a periodic cell.

Each MPI rank holds its local atoms and copies (ghosts) of every atom within the ghost cutoff of its
domain. A local atom's energy depends on atoms up to the receptive field away ((num_layers − 1)·r_max
+ last_r_max, :attr:`ModelConfig.receptive_field`), and a ghost's features are needed exactly up to
that depth, so a ghost cutoff of the receptive field makes the local energy exact (LAMMPS:
``comm_modify cutoff``). The
energy is summed over local atoms only; the forces on ghosts are the derivative of that energy and
go back to their owners by reverse communication (``newton on``). The virial Σ r ⊗ f runs over local
and ghost atoms ("fdotr"), which is exact for the local energy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from ..data import keys
from ..nn.potential import RelaxedPotential


class DomainEnergy(nn.Module):
    """``forward(positions [N, 3] Å, species [N], edge_index [2, E], nlocal, field [F] or None)``.

    ``positions`` and ``species`` (indices into the model's species) list the local atoms first,
    then the ghosts; ``edge_index`` is a full neighbour list (both directions) among all of them
    within ``r_max``, ghost–ghost pairs included; ``field`` in V/Å (T for a B field). Returns
    ``energy`` [1] (eV, local atoms), ``forces`` [N, 3] (eV/Å; ghosts' rows to be sent to their
    owners), ``virial`` [6] (eV; the symmetric part of Σ r ⊗ f, LAMMPS order xx, yy, zz, xy, xz, yz,
    = −volume × ASE's stress summed over domains) and, for a model
    with an E-field input, ``dipole`` [3] (e·Å, −∂E/∂E_field of the local energy).
    """

    def __init__(self, model: RelaxedPotential):
        super().__init__()
        self.model = model.eval()
        # What a C++ host reads from the file itself (pair_style regnn): no JSON parser needed there.
        self.species_names: List[str] = list(model.config.species)
        self.r_max = float(model.config.r_max)
        self.field_irreps: str = str(model.config.field_irreps or "")
        self.field_dim = model.field_dim
        self.dipole_start = model.dipole_start
        self.ghost_cutoff = float(model.config.receptive_field)

    def forward(self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, nlocal: int,
                field: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        n = positions.size(0)
        positions = positions.detach().requires_grad_(True)
        leaves: List[torch.Tensor] = [positions]
        source: Optional[torch.Tensor] = None
        if self.field_dim > 0:
            if field is None:
                source = positions.new_zeros(1, self.field_dim)
            else:
                source = field.to(positions.dtype).reshape(1, self.field_dim)
            if self.dipole_start >= 0:
                source = source.detach().requires_grad_(True)
                leaves.append(source)
        data = {
            keys.POSITIONS: positions,
            keys.SPECIES: species,
            keys.BATCH: torch.zeros(n, dtype=torch.long, device=positions.device),
            keys.EDGE_INDEX: edge_index,
            keys.EDGE_SHIFT: positions.new_zeros(edge_index.size(1), 3),
        }
        cell = positions.new_zeros(1, 3, 3)  # no periodic images: the ghosts are the images
        atomic = self.model.atomic_energies(positions, cell, data, source)
        energy = atomic[:nlocal].sum()
        grads = torch.autograd.grad([energy], leaves, allow_unused=True)
        gradient = grads[0]
        forces = -gradient if gradient is not None else torch.zeros_like(positions)
        w = torch.einsum("ia,ib->ab", positions.detach(), forces)
        # With θ or a field the energy is not rotation invariant: Σ r ⊗ f gains an antisymmetric part
        # (the torque of the field); the stress is the derivative by a symmetric strain, as in ASE.
        w = 0.5 * (w + w.transpose(0, 1))
        out = {
            "energy": energy.detach().reshape(1),
            "forces": forces.detach(),
            "virial": torch.stack([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]),
        }
        if len(leaves) > 1:
            d_field = grads[1]
            if d_field is not None:
                out["dipole"] = -d_field[0, self.dipole_start : self.dipole_start + 3].detach()
            else:
                out["dipole"] = positions.new_zeros(3)
        return out


def save_domain_model(model: RelaxedPotential, path: Union[str, Path], data_range: Optional[Dict[str, Any]] = None,
                      symmetry: Optional[Dict[str, Any]] = None) -> Path:
    """TorchScript-compile :class:`DomainEnergy` of ``model`` and write it to ``path`` atomically,
    with the model's metadata (see :func:`~regnn_ff.export.torchscript.metadata`) plus
    ``entry: "domain"`` and ``ghost_cutoff`` (Å)."""
    from .torchscript import checksum, metadata, torchscript_on_purpose, write_scripted

    with torchscript_on_purpose():
        scripted = torch.jit.script(DomainEnergy(model))
    meta = metadata(model, data_range, symmetry)
    meta.update(entry="domain", ghost_cutoff=scripted.ghost_cutoff)
    meta["checksum"] = checksum(meta, scripted)
    return write_scripted(scripted, meta, path)
