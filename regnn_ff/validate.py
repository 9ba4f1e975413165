"""Checks shared by every entry point: devices, particle indices, and the training data's range.

Errors are one-line ``ValueError``s that name the problem; inputs outside what the model was trained
on are warnings (:class:`ExtrapolationWarning`), not errors: extrapolating may be what the user wants.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch


class ExtrapolationWarning(UserWarning):
    """An input (a field, a label) lies outside the range of the training data, or is ignored."""


def torch_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine ('cpu', 'cuda', 'cuda:1')."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' was asked for, but torch finds no CUDA GPU on this machine; use 'cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}': this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif resolved.type != "cpu":
        raise ValueError(f"device '{device}': regnn-ff runs on 'cpu' or 'cuda'")
    return resolved


def particle_indices(indices: Iterable[Any], num_particles: Optional[int] = None, what: str = "atoms",
                     owner: str = "System") -> List[int]:
    """Validate indices of particles (an OpenMM System's, a topology's): integers, >= 0, no repeats,
    and below ``num_particles`` (of ``owner``) when it is known. ``what`` names the argument in errors."""
    if isinstance(indices, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of particle indices, got a string {indices!r}")
    out: List[int] = []
    first: Dict[int, int] = {}
    for k, value in enumerate(indices):
        try:
            if isinstance(value, (bool, np.bool_)):
                raise TypeError
            index = operator.index(value)
        except TypeError:
            raise ValueError(f"{what}[{k}] = {value!r} is not an integer particle index") from None
        if index < 0:
            raise ValueError(f"{what}[{k}] = {index} is negative; particle indices start at 0")
        if num_particles is not None and index >= num_particles:
            raise ValueError(f"{what}[{k}] = {index} is out of range: the {owner} has {num_particles} particles")
        if index in first:
            raise ValueError(f"{what}[{k}] = {index} repeats {what}[{first[index]}]: each particle may appear once")
        first[index] = k
        out.append(index)
    if not out:
        raise ValueError(f"{what} is empty: the model must act on at least one particle")
    return out


# ---- the training data's range -----------------------------------------------------------------

def data_range(frames: Sequence[Any]) -> Dict[str, Optional[Any]]:
    """What a model saw in training (stored in checkpoints and exported files): the largest field
    magnitude (model units: V/Å, T), the span of energies per atom (eV) and the RMS force (eV/Å).
    ``frames`` are :class:`~regnn_ff.data.datasets.Frame` objects."""
    fields = [float(np.linalg.norm(f.field)) for f in frames if f.field is not None]
    energies = [float(f.labels["energy"]) / len(f.atoms) for f in frames if "energy" in f.labels]
    forces = [np.asarray(f.labels["forces"]).ravel() for f in frames if "forces" in f.labels]
    flat = np.concatenate(forces) if forces else np.zeros(0)
    return {
        "field_max": max(fields) if fields else None,
        "energy_per_atom": [min(energies), max(energies)] if energies else None,
        "forces_rms": float(np.sqrt(np.mean(flat**2))) if flat.size else None,
    }


def warn_field_beyond_training(field: Optional[np.ndarray], trained: Optional[Dict[str, Any]], unit: str,
                               where: str = "field") -> None:
    """Warn when a field's magnitude (per structure, rows of ``field``) exceeds the training data's
    largest by more than 10 %."""
    limit = (trained or {}).get("field_max")
    if field is None or limit is None:
        return
    largest = float(np.linalg.norm(np.atleast_2d(np.asarray(field, dtype=np.float64)), axis=1).max())
    if largest > 1.1 * limit + 1e-9:
        warnings.warn(f"{where}: magnitude {largest:.4g} {unit} is beyond the training data's largest field "
                      f"({limit:.4g} {unit}); the model extrapolates", ExtrapolationWarning, stacklevel=3)


#: Energy-unit factors a label file may carelessly be in (per eV), for the hint in warnings.
FOREIGN_UNITS = {"kcal/mol": 23.0605, "kJ/mol": 96.4853, "Hartree": 1 / 27.2114, "Ry": 1 / 13.6057}


def _unit_hint(ratio: float) -> str:
    for name, factor in FOREIGN_UNITS.items():
        if abs(np.log(abs(ratio) / factor)) < np.log(1.3):
            return f" (about {factor:.4g}×: labels in {name}? regnn expects eV and eV/Å)"
    return " (labels in other units? regnn expects eV and eV/Å)"


def warn_labels_beyond_training(frames: Sequence[Any], trained: Optional[Dict[str, Any]], source: str) -> None:
    """Warn when a data file's energies per atom or forces lie far outside the training data's, with a
    hint when the ratio matches a common unit mistake (kcal/mol, kJ/mol, Hartree under eV keys)."""
    if not trained:
        return
    seen = data_range(frames)
    span = trained.get("energy_per_atom")
    if span and seen["energy_per_atom"]:
        lo, hi = span
        width = max(hi - lo, 1.0)
        new_lo, new_hi = seen["energy_per_atom"]
        if new_lo < lo - width or new_hi > hi + width:
            middle = 0.5 * (lo + hi)
            ratio = 0.5 * (new_lo + new_hi) / middle if middle else 0.0
            hint = _unit_hint(ratio) if ratio > 0 else ""
            warnings.warn(f"{source}: energies per atom span [{new_lo:.4g}, {new_hi:.4g}] eV, far outside the "
                          f"training data's [{lo:.4g}, {hi:.4g}] eV{hint}", ExtrapolationWarning, stacklevel=2)
    rms = trained.get("forces_rms")
    if rms and seen["forces_rms"] and seen["forces_rms"] > 5.0 * rms:
        warnings.warn(f"{source}: RMS force {seen['forces_rms']:.4g} eV/Å is {seen['forces_rms'] / rms:.3g}× the "
                      f"training data's ({rms:.4g} eV/Å){_unit_hint(seen['forces_rms'] / rms)}",
                      ExtrapolationWarning, stacklevel=2)


def warn_ignored_inputs(frames: Sequence[Any], field_key: str, field_dim: int, has_e_field: bool, source: str,
                        dipole_weight: float = 0.0) -> None:
    """Warn when the data (or the loss) asks for something the model cannot use: a field for a model
    without field input, dipole labels or a dipole loss for a model without an E-field input."""
    with_field = sum(field_key in f.atoms.info for f in frames)
    if field_dim == 0 and with_field:
        warnings.warn(f"{source}: {with_field} frame(s) carry a '{field_key}', but the model has no field input "
                      "(field_irreps is null): the field is ignored", ExtrapolationWarning, stacklevel=2)
    with_dipole = sum("dipole" in f.labels for f in frames)
    if not has_e_field and with_dipole:
        warnings.warn(f"{source}: {with_dipole} frame(s) have dipole labels, but the model has no E-field input "
                      "(a 1o block in field_irreps): dipoles are ignored", ExtrapolationWarning, stacklevel=2)
    if not has_e_field and dipole_weight > 0:
        warnings.warn("loss.dipole > 0, but the model has no E-field input: there is no dipole to fit, the term is "
                      "ignored", ExtrapolationWarning, stacklevel=2)
