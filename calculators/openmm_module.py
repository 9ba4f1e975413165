"""TorchScript modules in OpenMM's calling convention around a regnn-ff model.

OpenMM passes positions in nm (all particles of the System), the box in nm when the force is
periodic, then the global parameters in the order they were added, here the field in V/nm. The
module picks the model's atoms, builds the neighbour list with vesin-torch (on the positions'
device), calls the model, and returns the energy in kJ/mol; OpenMM differentiates it for forces
and for the energy-parameter derivatives (−dipole).

Inputs OpenMM hands over unchecked are refused here, each with one message (OpenMM shows it after
the TorchScript traceback): too few particles for the model's atom indices, non-finite positions or
field parameters, and overlapping atoms (undefined directions: NaN energies). A cutoff that would give
an enormous periodic neighbour list is refused when the force is built (from the System's box), not
here: raising at that point of a periodic TorchForce call crashed openmm-torch 1.10 (a segfault while
torch assembles the error's call stack).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn
from vesin_torch import NeighborList

from regnn_ff.data import keys
from regnn_ff.data.units import ANGSTROM_PER_NM, KJ_PER_MOL_PER_EV


#: Pairs closer than this (Å) are overlapping atoms (as :data:`regnn_ff.data.graph.MIN_DISTANCE`).
MIN_DISTANCE = 1e-6


class OpenMMEnergy(nn.Module):
    """Shared body; the subclasses only fix ``forward``'s signature for OpenMM.

    ``atom_indices`` pick the model's atoms from the positions OpenMM passes; ``reported`` are the
    same atoms' indices in the System, used in error messages.
    """

    def __init__(self, model: nn.Module, species, atom_indices, r_max: float, periodic: bool,
                 dtype: torch.dtype, field_dim: int, field_scale: float = 1.0, reported=None):
        super().__init__()
        self.model = model
        self.register_buffer("species", torch.as_tensor(species, dtype=torch.long))
        self.register_buffer("atom_indices", torch.as_tensor(atom_indices, dtype=torch.long))
        self.register_buffer("reported", torch.as_tensor(atom_indices if reported is None else reported, dtype=torch.long))
        self.num_required = int(max(atom_indices)) + 1
        self.r_max = float(r_max)
        self.periodic = bool(periodic)
        self.dtype = dtype
        self.field_dim = int(field_dim)
        self.field_scale = float(field_scale)  # OpenMM parameter units -> the model's field units
        self.angstrom_per_nm = float(ANGSTROM_PER_NM)
        self.kj_per_mol_per_ev = float(KJ_PER_MOL_PER_EV)
        self.min_distance = float(MIN_DISTANCE)

    def field(self, positions: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor, ez: torch.Tensor) -> torch.Tensor:
        """Three global parameters (0-dim on Reference/CPU, shape [1] on CUDA) as one vector."""
        return torch.stack([ex.to(positions).reshape(()), ey.to(positions).reshape(()), ez.to(positions).reshape(())])

    def _check_overlap(self, i: torch.Tensor, j: torch.Tensor, distance: torch.Tensor) -> None:
        if distance.numel() > 0:
            k = int(torch.argmin(distance))
            if float(distance[k]) < self.min_distance:
                raise ValueError("atoms {} and {} overlap (distance {} Å): their direction is undefined".format(
                    int(self.reported[i[k]]), int(self.reported[j[k]]), float(distance[k])))

    def graph(self, positions: torch.Tensor, box: Optional[torch.Tensor], field: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The model's graph (Å, the model's field units) from OpenMM's positions and box (nm)."""
        if positions.size(0) < self.num_required:
            raise ValueError("the System has {} particles, but the model acts on particle {}".format(
                positions.size(0), self.num_required - 1))
        pos = positions.index_select(0, self.atom_indices).to(self.dtype) * self.angstrom_per_nm
        if not bool(torch.isfinite(pos.detach()).all()):
            raise ValueError("a position of the model's atoms is not finite (NaN or inf)")
        if box is not None and self.periodic:
            cell = box.to(self.dtype) * self.angstrom_per_nm
        else:
            cell = torch.zeros(3, 3, dtype=self.dtype, device=pos.device)
        # A half list, mirrored: the model's radial MLP then runs once per pair (see edges_mirrored).
        nl = NeighborList(cutoff=self.r_max, full_list=False)
        i, j, shift, distance = nl.compute(points=pos.detach(), box=cell.detach(), periodic=self.periodic,
                                           quantities="ijSd", copy=True)
        self._check_overlap(i, j, distance)
        i, j = torch.cat([i, j]), torch.cat([j, i])
        shift = torch.cat([shift, -shift])
        n = pos.size(0)
        graph: Dict[str, torch.Tensor] = {
            keys.POSITIONS: pos,
            keys.SPECIES: self.species,
            keys.BATCH: torch.zeros(n, dtype=torch.long, device=pos.device),
            keys.NUM_ATOMS: torch.tensor([n], dtype=torch.long, device=pos.device),
            keys.CELL: cell.unsqueeze(0),
            keys.PBC: torch.full((1, 3), self.periodic, dtype=torch.bool, device=pos.device),
            keys.EDGE_INDEX: torch.stack([i.to(torch.long), j.to(torch.long)]),
            keys.EDGE_SHIFT: shift.to(self.dtype),
        }
        if field is not None:
            if not bool(torch.isfinite(field.detach()).all()):
                raise ValueError("the field global parameters are not finite (NaN or inf)")
            graph[keys.FIELD] = (field.to(self.dtype) * self.field_scale).view(1, -1)
        return graph

    def energy(self, positions: torch.Tensor, box: Optional[torch.Tensor], field: Optional[torch.Tensor]) -> torch.Tensor:
        graph = self.graph(positions, box, field)
        energy = self.model(graph, [keys.ENERGY])[keys.ENERGY].sum() * self.kj_per_mol_per_ev
        return energy.to(positions.dtype)


class PeriodicWithField(OpenMMEnergy):
    def forward(self, positions: torch.Tensor, box: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor, ez: torch.Tensor) -> torch.Tensor:
        return self.energy(positions, box, self.field(positions, ex, ey, ez))


class PeriodicNoField(OpenMMEnergy):
    def forward(self, positions: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self.energy(positions, box, None)


class MoleculeWithField(OpenMMEnergy):
    def forward(self, positions: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor, ez: torch.Tensor) -> torch.Tensor:
        return self.energy(positions, None, self.field(positions, ex, ey, ez))


class MoleculeNoField(OpenMMEnergy):
    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.energy(positions, None, None)


def openmm_module(model: nn.Module, species, atom_indices, r_max: float, periodic: bool, dtype: torch.dtype,
                  field_dim: int, field_scale: float = 1.0, reported=None) -> OpenMMEnergy:
    """The module whose ``forward`` matches how OpenMM will call it (field: 0 or 3 parameters)."""
    cls = {(True, True): PeriodicWithField, (True, False): PeriodicNoField,
           (False, True): MoleculeWithField, (False, False): MoleculeNoField}[(periodic, field_dim == 3)]
    return cls(model, species, atom_indices, r_max, periodic, dtype, field_dim, field_scale, reported)
