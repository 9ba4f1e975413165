"""Evaluate a :class:`~regnn_ff.nn.potential.RelaxedPotential` on ``ase.Atoms`` and get numpy arrays back.

Kept apart from the network (``nn/``): this is the convenience layer between ASE structures and
the graph dictionaries the model's ``forward`` takes.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .data import keys
from .data.graph import Structures, as_structure_list, atoms_to_graph, field_array


def compute(model, structures: Structures, field=None,
            properties: Sequence[str] = (keys.ENERGY, keys.FORCES)) -> Dict[str, np.ndarray]:
    """Evaluate ``model`` on ``ase.Atoms`` (one or a list).

    Args:
        model: a ``RelaxedPotential``.
        structures: positions in Å.
        field: applied field in the model's field irreps (E in V/Å, B in T): shape ``(F,)`` for
            all structures or ``(B, F)``; ``None`` means zero field.
        properties: any of ``energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, Voigt,
            periodic cells only), ``dipole`` (e·Å, models with an E-field input).

    For a single ``Atoms`` the energy is a scalar, stress ``(6,)`` and dipole ``(3,)``; for a
    list they gain a leading structure axis. Forces are always ``(N_total, 3)``.
    """
    if isinstance(properties, str):
        raise ValueError(f"properties must be a list of names, e.g. ['{properties}'], got the string '{properties}'")
    properties = list(properties)
    for p in properties:
        if p not in keys.PROPERTIES:
            raise ValueError(f"unknown property '{p}'; choose from {list(keys.PROPERTIES)}")
    if keys.DIPOLE in properties and model.dipole_start < 0:
        raise ValueError("dipole needs an E-field input (a 1o block in field_irreps); this model has none")
    items = as_structure_list(structures)
    if keys.STRESS in properties:
        for k, atoms in enumerate(items):
            if not atoms.pbc.any() or abs(atoms.cell.volume) < 1e-12:
                raise ValueError(f"stress needs a periodic cell with non-zero volume; structure {k} has none")
    param = model.representation.embedding
    graph = atoms_to_graph(
        items, model.species_names, model.r_max, field_array(field, model.config.field_irreps, len(items)),
        dtype=param.dtype, device=param.device,
    )
    out = model(graph, properties)
    single = not isinstance(structures, (list, tuple))
    result = {}
    for p in properties:
        value = out[p].detach().cpu().numpy()
        result[p] = value[0] if single and p != keys.FORCES else value
    return result
