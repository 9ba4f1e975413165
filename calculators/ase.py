"""ASE calculator for regnn-ff models, with the applied field as a calculator parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from regnn_ff.data.graph import atoms_to_graph, field_array
from regnn_ff.export.load import LoadedModel, load_model
from regnn_ff.nn.potential import RelaxedPotential
from regnn_ff.performance import tune_allocator as _tune_allocator
from regnn_ff.validate import warn_field_beyond_training


class REGNNCalculator(Calculator):
    """``REGNNCalculator("model.pt", device="cpu", field=(Ex, Ey, Ez))``.

    Units as ASE: eV, eV/Å, eV/Å³ (Voigt), e·Å; the field in V/Å for an E field (in the model's
    field irreps in general). ``calc.set(field=...)`` changes it between steps (the calculator keeps
    its own copy, so changing the array afterwards needs another ``set``). ``stress`` is available
    for periodic cells, ``dipole`` (−∂E/∂E) for models with an E-field input. A field beyond the
    training data's largest gives an :class:`~regnn_ff.validate.ExtrapolationWarning`.
    ``dtype`` ("float32"/"float64") converts the model; ``tune_allocator`` lets malloc keep freed
    memory for the next step (process-wide, see :func:`regnn_ff.performance.tune_allocator`).
    Pickling (``Atoms`` with this calculator attached) stores the model's path and loads it again.
    """

    # Declared on the class itself: extending an inherited list would change every calculator.
    implemented_properties = ["energy", "free_energy", "forces", "stress", "dipole"]
    default_parameters = {"field": None}

    def __init__(self, model: Union[str, Path, RelaxedPotential, LoadedModel], device: str = "cpu",
                 field: Optional[Sequence[float]] = None, tune_allocator: bool = True,
                 dtype: Optional[str] = None, **kwargs):
        self.model = load_model(model, device, dtype)
        if tune_allocator:
            _tune_allocator()
        super().__init__(field=self._check_field(field), **kwargs)

    def _check_field(self, field) -> Optional[list]:
        """The field as a plain list of floats (a copy), or None; one-line errors from the core."""
        arr = field_array(field, self.model.metadata.get("field_irreps"), 1)
        if arr is None:
            return None
        warn_field_beyond_training(arr, self.model.data_range, self.model.field_unit, "REGNNCalculator field")
        return arr[0].tolist()

    def set(self, **kwargs):
        unknown = sorted(set(kwargs) - set(self.default_parameters))
        if unknown:
            # ASE's own set() would store a misspelt key silently and run at the old field.
            raise ValueError(f"REGNNCalculator.set: unknown parameter(s) {unknown}; known: {sorted(self.default_parameters)}")
        if "field" in kwargs:
            kwargs["field"] = self._check_field(kwargs["field"])
        changed = super().set(**kwargs)
        if "field" in changed:
            self.reset()  # results computed in the old field are stale
        return changed

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        field = self.parameters.field
        field = None if field is None else np.asarray(field, dtype=np.float64)[None]
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
