"""``RelaxedPotential``: a representation (message passing), a readout (per-atom energy) and the
derivatives (forces, stress, dipole), composed; plus θ's API. Each part lives in its own module."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from e3nn import o3
from torch import nn

from ..data import keys
from .config import ModelConfig
from .derivatives import derivative_outputs, differentiable_inputs
from .readout import AtomicEnergyReadout
from .representation import RelaxedRepresentation


class RelaxedPotential(nn.Module):
    """A relaxed-equivariant interatomic potential (NequIP-style message passing, e3nn irreps).

    Each interaction block carries a symmetry-breaking source s = θ ⊕ field (see
    :mod:`regnn_ff.nn.relaxed`). With ``l_relaxed=None`` and no field the model is an ordinary
    E(3)-equivariant potential; with θ it can learn, and afterwards report, a broken symmetry.

    Parts: ``representation`` (:class:`~regnn_ff.nn.representation.RelaxedRepresentation`),
    ``readout`` (:class:`~regnn_ff.nn.readout.AtomicEnergyReadout`; statistics through its
    ``set_statistics``) and the derivatives (:mod:`regnn_ff.nn.derivatives`).

    Use :meth:`compute` on ``ase.Atoms``; ``forward(graph, properties)`` is the TorchScript entry
    point on graph dictionaries (keys in :mod:`regnn_ff.data.keys`). Units: Å, eV, eV/Å, eV/Å³,
    e·Å; fields in V/Å (E) and T (B).
    """

    __jit_unused_properties__ = ["layers", "dtype"]

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
        self.representation = RelaxedRepresentation(c)
        self.readout = AtomicEnergyReadout(c.channels, c.readout_hidden, len(c.species), c.num_layers)

    @property
    def layers(self) -> nn.ModuleList:
        """The interaction blocks (each with its ``source`` holding θ)."""
        return self.representation.layers

    @property
    def dtype(self) -> torch.dtype:
        return self.representation.embedding.dtype

    # ---- network -------------------------------------------------------------------------------
    def atomic_energies(
        self, positions: torch.Tensor, cell: torch.Tensor, data: Dict[str, torch.Tensor], field: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Per-atom energies [N] (eV) for the given (possibly strained) positions and cell; with
        ``field_time_reversal``, averaged over the field and its time reverse."""
        atomic = self.readout(self.representation(positions, cell, data, field), data[keys.SPECIES])
        if self.time_reversal and field is not None:
            reversed_field = field * self.time_reversal_sign
            atomic = 0.5 * (atomic + self.readout(self.representation(positions, cell, data, reversed_field),
                                                  data[keys.SPECIES]))
        return atomic

    def forward(self, data: Dict[str, torch.Tensor], properties: List[str]) -> Dict[str, torch.Tensor]:
        """Energy [B] (eV) and the requested derivatives: ``forces`` [N, 3] (eV/Å), ``stress`` [B, 6]
        (eV/Å³, Voigt), ``dipole`` [B, 3] (e·Å). Training mode keeps the graph for force losses."""
        batch = data[keys.BATCH]
        num_structures = data[keys.NUM_ATOMS].size(0)
        field: Optional[torch.Tensor] = None
        if self.field_dim > 0:
            if keys.FIELD in data:
                field = data[keys.FIELD]
            else:
                field = data[keys.POSITIONS].new_zeros(num_structures, self.field_dim)
        want_forces = keys.FORCES in properties
        want_stress = keys.STRESS in properties
        want_dipole = keys.DIPOLE in properties and self.dipole_start >= 0 and field is not None
        positions, cell, field, inputs = differentiable_inputs(
            data[keys.POSITIONS], data[keys.CELL], batch, field, num_structures, want_forces, want_stress, want_dipole)
        atomic = self.atomic_energies(positions, cell, data, field)
        energy = atomic.new_zeros(num_structures).index_add(0, batch, atomic)
        out: Dict[str, torch.Tensor] = {keys.ENERGY: energy, keys.ATOMIC_ENERGY: atomic}
        out.update(derivative_outputs(energy, inputs, data[keys.CELL], want_forces, want_stress, want_dipole,
                                      self.dipole_start, self.training))
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

    @torch.no_grad()
    def shrink_relaxed_(self, step: float, state: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """The group-lasso proximal step (:meth:`RelaxedSource.shrink_`) on every layer's θ, or on
        the θ entries of ``state`` (a state dict such as an EMA copy of the weights)."""
        if self.config.l_relaxed is None:
            return
        for k, layer in enumerate(self.layers):
            layer.source.shrink_(step, None if state is None else state[f"representation.layers.{k}.source.theta"])

    # ---- convenience on ase.Atoms --------------------------------------------------------------
    def compute(self, structures, field=None, properties: Sequence[str] = (keys.ENERGY, keys.FORCES)) -> Dict[str, np.ndarray]:
        """Evaluate ``ase.Atoms`` (one or a list) and return numpy arrays; see :func:`regnn_ff.compute.compute`."""
        from ..compute import compute

        return compute(self, structures, field, properties)
