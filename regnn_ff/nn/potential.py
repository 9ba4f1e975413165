"""``RelaxedPotential``: embedding → relaxed interaction blocks → per-atom energy → sum, and every
derivative (forces, stress, dipole) in one place."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from e3nn import o3
from torch import nn

from ..data import keys
from ..data.graph import Structures, as_structure_list, atoms_to_graph, edges_mirrored, field_array
from .config import ModelConfig
from .interaction import RelaxedInteraction
from .irreps import natural_irreps
from .neighbours import pad_vectors, padded_layout, with_zero_row
from .radial import BesselBasis
from .readout import AtomicEnergyReadout
from .relaxed import RelaxedSource


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t if t.requires_grad else t.detach().requires_grad_(True)


def _voigt(t: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] -> [B, 6] in ASE's Voigt order (xx, yy, zz, yz, xz, xy)."""
    return torch.stack([t[:, 0, 0], t[:, 1, 1], t[:, 2, 2], t[:, 1, 2], t[:, 0, 2], t[:, 0, 1]], dim=1)


class RelaxedPotential(nn.Module):
    """A relaxed-equivariant interatomic potential (NequIP-style message passing, e3nn irreps).

    Each interaction block carries a symmetry-breaking source s = θ ⊕ field (see
    :mod:`regnn_ff.nn.relaxed`). With ``l_relaxed=None`` and no field the model is an ordinary
    E(3)-equivariant potential; with θ it can learn, and afterwards report, a broken symmetry.

    Use :meth:`compute` on ``ase.Atoms``; ``forward(graph, properties)`` is the TorchScript entry
    point on graph dictionaries (keys in :mod:`regnn_ff.data.keys`). Units: Å, eV, eV/Å, eV/Å³,
    e·Å; fields in V/Å (E) and T (B).
    """

    def __init__(self, config: Union[ModelConfig, Dict]):
        super().__init__()
        if not isinstance(config, ModelConfig):
            config = ModelConfig.from_dict(config)
        self.config = config
        c = config
        self.species_names: List[str] = list(c.species)
        self.r_max = float(c.r_max)
        field_irreps = o3.Irreps(c.field_irreps) if c.field_irreps else o3.Irreps("")
        self.field_dim = field_irreps.dim
        e_field = [sl.start for (_, ir), sl in zip(field_irreps, field_irreps.slices()) if ir == o3.Irrep("1o")]
        self.dipole_start = e_field[0] if e_field else -1
        self.time_reversal = bool(c.field_time_reversal and c.field_irreps)
        sign = torch.ones(max(self.field_dim, 1))
        for (_, ir), sl in zip(field_irreps, field_irreps.slices()):
            if ir.l % 2 == 1 and ir.p == 1:
                sign[sl] = -1.0
        self.register_buffer("time_reversal_sign", sign, persistent=False)

        irreps_sh = natural_irreps(c.l_max)
        hidden = natural_irreps(c.l_max)
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")
        self.radial_basis = BesselBasis(c.r_max, c.num_basis, c.cutoff_p)
        self.embedding = nn.Parameter(torch.randn(len(c.species), c.channels))
        layers = []
        for k in range(c.num_layers):
            irreps_in = o3.Irreps("0e") if k == 0 else hidden
            # The last block only feeds the energy, so it computes scalars only.
            irreps_out = o3.Irreps("0e") if k == c.num_layers - 1 else hidden
            source = RelaxedSource(c.l_relaxed, c.relaxed_mul, c.field_irreps) if c.has_source else None
            layers.append(
                RelaxedInteraction(
                    irreps_in, irreps_out, c.channels, len(c.species), irreps_sh, source,
                    edge_entry=c.relaxed_entry in ("edge", "both"),
                    node_entry=c.relaxed_entry in ("node", "both"),
                    num_basis=c.num_basis, radial_hidden=c.radial_hidden, radial_layers=c.radial_layers,
                    avg_num_neighbors=c.avg_num_neighbors,
                )
            )
        self.layers = nn.ModuleList(layers)
        self.readout = AtomicEnergyReadout(c.channels, c.readout_hidden, len(c.species))

    # ---- network -------------------------------------------------------------------------------
    def atomic_energies(
        self, positions: torch.Tensor, cell: torch.Tensor, data: Dict[str, torch.Tensor], field: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Per-atom energies [N] (eV) for the given (possibly strained) positions and cell."""
        species, batch, edge_index = data[keys.SPECIES], data[keys.BATCH], data[keys.EDGE_INDEX]
        edge_batch = batch[edge_index[0]]
        shift = torch.bmm(data[keys.EDGE_SHIFT].unsqueeze(1), cell[edge_batch]).squeeze(1)
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + shift
        num_edges, num_atoms = edge_index.size(1), positions.size(0)
        unique = num_edges
        if edges_mirrored(edge_index, data[keys.EDGE_SHIFT]):
            unique = num_edges // 2
        elif not torch.equal(torch.bincount(edge_index[0], minlength=num_atoms),
                             torch.bincount(edge_index[1], minlength=num_atoms)):
            # The last block works from the senders' side, which needs every edge both ways.
            raise ValueError("edge_index must be a full neighbour list (every pair in both directions); "
                             "an atom is the centre of a different number of edges than it is the neighbour of")
        slot, neighbour, radial_row = padded_layout(edge_index, num_atoms, unique)
        # Distances (and so radial weights) of mirrored edges are equal to the last bit: one MLP row each.
        radial = with_zero_row(self.radial_basis(torch.linalg.norm(vectors[:unique], dim=1)))
        sh = self.spherical_harmonics(pad_vectors(vectors, slot, neighbour.numel(), self.r_max))
        x = self.embedding[species].unsqueeze(-1)
        for layer in self.layers:
            x = layer(x, species, batch, neighbour, sh, radial, radial_row, field)
        return self.readout(x[:, :, 0], species)

    def forward(self, data: Dict[str, torch.Tensor], properties: List[str]) -> Dict[str, torch.Tensor]:
        """Energy [B] (eV) and the requested derivatives: ``forces`` [N, 3] (eV/Å), ``stress`` [B, 6]
        (eV/Å³, Voigt), ``dipole`` [B, 3] (e·Å). Training mode keeps the graph for force losses."""
        positions, cell, batch = data[keys.POSITIONS], data[keys.CELL], data[keys.BATCH]
        num_structures = data[keys.NUM_ATOMS].size(0)
        field: Optional[torch.Tensor] = None
        if self.field_dim > 0:
            if keys.FIELD in data:
                field = data[keys.FIELD]
            else:
                field = positions.new_zeros(num_structures, self.field_dim)
        want_forces = keys.FORCES in properties
        want_stress = keys.STRESS in properties
        want_dipole = keys.DIPOLE in properties and self.dipole_start >= 0 and field is not None
        inputs: List[torch.Tensor] = []
        if want_forces:
            positions = _leaf(positions)
            inputs.append(positions)
        if want_stress:
            strain = torch.zeros(num_structures, 3, 3, dtype=positions.dtype, device=positions.device)
            strain.requires_grad_(True)
            inputs.append(strain)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.bmm(positions.unsqueeze(1), symmetric[batch]).squeeze(1)
            cell = cell + torch.bmm(cell, symmetric)
        if want_dipole and field is not None:
            field = _leaf(field)
            inputs.append(field)

        atomic = self.atomic_energies(positions, cell, data, field)
        if self.time_reversal and field is not None:
            atomic = 0.5 * (atomic + self.atomic_energies(positions, cell, data, field * self.time_reversal_sign))
        energy = atomic.new_zeros(num_structures).index_add(0, batch, atomic)
        out: Dict[str, torch.Tensor] = {keys.ENERGY: energy, keys.ATOMIC_ENERGY: atomic}
        if len(inputs) == 0:
            return out

        grads = torch.autograd.grad([energy.sum()], inputs, create_graph=self.training, allow_unused=True)
        k = 0
        if want_forces:
            g = grads[k]
            out[keys.FORCES] = -g if g is not None else torch.zeros_like(inputs[k])
            k += 1
        if want_stress:
            g = grads[k]
            virial = g if g is not None else torch.zeros_like(inputs[k])
            volume = torch.linalg.det(data[keys.CELL]).abs()
            out[keys.STRESS] = _voigt(virial / volume.view(-1, 1, 1))
            k += 1
        if want_dipole:
            g = grads[k]
            dE = g if g is not None else torch.zeros_like(inputs[k])
            out[keys.DIPOLE] = -dE[:, self.dipole_start : self.dipole_start + 3]
        return out

    # ---- relaxed weights -----------------------------------------------------------------------
    def relaxed_irreps(self) -> Optional[str]:
        """Irreps of θ (e.g. ``"1x0e+1x0o+1x1o+1x1e+1x2e+1x2o"``), or None for a strict model."""
        if self.config.l_relaxed is None:
            return None
        return str(self.layers[0].source.irreps_theta)

    def relaxed_weights(self) -> List[torch.Tensor]:
        """θ of every layer (copies, 1-D, e3nn basis: l = 1 components ordered x, y, z)."""
        if self.config.l_relaxed is None:
            return []
        return [layer.source.theta.detach().clone() for layer in self.layers]

    def set_relaxed_weights(self, weights: Sequence[torch.Tensor]) -> None:
        """Set θ of every layer from a list like the one :meth:`relaxed_weights` returns."""
        if self.config.l_relaxed is None:
            raise ValueError("this model is strictly equivariant (l_relaxed=None): it has no relaxed weights")
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} relaxed weight vectors (one per layer), got {len(weights)}")
        for k, (layer, w) in enumerate(zip(self.layers, weights)):
            w = torch.as_tensor(w)
            theta = layer.source.theta
            if w.shape != theta.shape:
                raise ValueError(
                    f"relaxed weights of layer {k}: expected shape {tuple(theta.shape)} "
                    f"({self.relaxed_irreps()}), got {tuple(w.shape)}"
                )
            with torch.no_grad():
                theta.copy_(w.to(theta))

    def relaxed_penalty(self) -> torch.Tensor:
        """Σ over layers of the group norm of θ's non-scalar blocks (add ``weight × this`` to a loss)."""
        total = self.readout.scale.new_zeros(())
        if self.config.l_relaxed is not None:
            for layer in self.layers:
                total = total + layer.source.penalty()
        return total

    # ---- convenience on ase.Atoms --------------------------------------------------------------
    def compute(
        self,
        structures: Structures,
        field=None,
        properties: Sequence[str] = (keys.ENERGY, keys.FORCES),
    ) -> Dict[str, np.ndarray]:
        """Evaluate ``ase.Atoms`` (one or a list) and return numpy arrays.

        Args:
            structures: positions in Å.
            field: applied field in the model's field irreps (E in V/Å, B in T): shape ``(F,)`` for
                all structures or ``(B, F)``; ``None`` means zero field.
            properties: any of ``energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, Voigt,
                periodic cells only), ``dipole`` (e·Å, models with an E-field input).

        For a single ``Atoms`` the energy is a scalar, stress ``(6,)`` and dipole ``(3,)``; for a
        list they gain a leading structure axis. Forces are always ``(N_total, 3)``.
        """
        properties = list(properties)
        for p in properties:
            if p not in keys.PROPERTIES:
                raise ValueError(f"unknown property '{p}'; choose from {list(keys.PROPERTIES)}")
        if keys.DIPOLE in properties and self.dipole_start < 0:
            raise ValueError("dipole needs an E-field input (a 1o block in field_irreps); this model has none")
        items = as_structure_list(structures)
        if keys.STRESS in properties:
            for k, atoms in enumerate(items):
                if not atoms.pbc.any() or abs(atoms.cell.volume) < 1e-12:
                    raise ValueError(f"stress needs a periodic cell with non-zero volume; structure {k} has none")
        param = self.embedding
        graph = atoms_to_graph(
            items, self.species_names, self.r_max, field_array(field, self.config.field_irreps, len(items)),
            dtype=param.dtype, device=param.device,
        )
        out = self(graph, properties)
        single = not isinstance(structures, (list, tuple))
        result = {}
        for p in properties:
            value = out[p].detach().cpu().numpy()
            result[p] = value[0] if single and p != keys.FORCES else value
        return result
