"""ASE calculator for regnn-ff models, with the applied field as a calculator parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from regnn_ff.data.graph import atoms_to_graph, field_array
from regnn_ff.nn.potential import RelaxedPotential
from regnn_ff.performance import tune_allocator as _tune_allocator

from .loader import load_model


class REGNNCalculator(Calculator):
    """``REGNNCalculator("model.pt", device="cpu", field=(Ex, Ey, Ez))``.

    Units as ASE: eV, eV/Å, eV/Å³ (Voigt), e·Å; the field in V/Å for an E field (in the model's
    field irreps in general). ``calc.set(field=...)`` changes it between steps. ``stress`` is
    available for periodic cells, ``dipole`` (−∂E/∂E) for models with an E-field input.
    ``tune_allocator`` lets malloc keep freed memory for the next step (process-wide, see
    :func:`regnn_ff.performance.tune_allocator`).
    """

    # Declared on the class itself: extending an inherited list would change every calculator.
    implemented_properties = ["energy", "free_energy", "forces", "stress", "dipole"]
    default_parameters = {"field": None}

    def __init__(self, model: Union[str, Path, RelaxedPotential], device: str = "cpu",
                 field: Optional[Sequence[float]] = None, tune_allocator: bool = True, **kwargs):
        self.model = load_model(model, device)
        if tune_allocator:
            _tune_allocator()
        super().__init__(field=field, **kwargs)
        self._check_field(field)

    def _check_field(self, field) -> Optional[np.ndarray]:
        """The field as ``[1, F]`` (or None), with the core's one-line errors."""
        return field_array(field, self.model.metadata.get("field_irreps"), 1)

    def set(self, **kwargs):
        if "field" in kwargs:
            self._check_field(kwargs["field"])
        changed = super().set(**kwargs)
        if "field" in changed:
            self.reset()  # results computed in the old field are stale
        return changed

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        field = self._check_field(self.parameters.field)
        wanted = ["energy", "forces"]
        periodic = bool(self.atoms.pbc.any()) and abs(self.atoms.cell.volume) > 1e-12
        if periodic:
            wanted.append("stress")
        if self.model.has_dipole:
            wanted.append("dipole")
        graph = atoms_to_graph(self.atoms, self.model.species, self.model.r_max, field,
                               dtype=self.model.dtype, device=self.model.device)
        out = self.model.module(graph, wanted)
        energy = float(out["energy"].detach().sum())
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": out["forces"].detach().cpu().double().numpy()}
        if periodic:
            self.results["stress"] = out["stress"][0].detach().cpu().double().numpy()
        if "dipole" in out:
            self.results["dipole"] = out["dipole"][0].detach().cpu().double().numpy()
