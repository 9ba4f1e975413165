"""Labelled frames from extxyz (or any file ASE reads): configurable keys, per-property masks, splits.

Every label error names the file and the frame, and is raised while reading, before training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import ase.io
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

LABELS = ("energy", "forces", "stress", "dipole")


@dataclass
class KeyMap:
    """Where each label lives in a frame: ``info`` keys for per-structure values, ``arrays`` for per-atom.

    Attributes (names in the file): ``energy`` (info, eV), ``forces`` (arrays, eV/Å), ``stress``
    (info, eV/Å³, 6 Voigt or 9 values), ``dipole`` (info, e·Å), ``field`` (info, the applied field
    in the model's field irreps; 3 numbers in V/Å for an E field).
    """

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"
    dipole: str = "dipole"
    field: str = "field"

    @classmethod
    def from_dict(cls, data: Optional[Dict], source: str = "keys") -> "KeyMap":
        data = data or {}
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(f"{source}: unknown label key '{key}' (known: {known})")
        return cls(**data)


@dataclass
class Frame:
    """One structure with its labels (any may be missing) and its applied field.

    ``labels`` holds ``energy`` (float, eV), ``forces`` ((N, 3), eV/Å), ``stress`` ((6,), eV/Å³,
    Voigt), ``dipole`` ((3,), e·Å). ``field`` is ``(F,)`` in the model's field irreps, or None.
    """

    atoms: Atoms
    labels: Dict[str, np.ndarray]
    field: Optional[np.ndarray] = None
    source: str = ""


def _lookup(atoms: Atoms, name: str, per_atom: bool):
    """A label from ``info``/``arrays``, or from the calculator results ASE's extxyz reader makes."""
    store = atoms.arrays if per_atom else atoms.info
    if name in store:
        return store[name]
    calc = atoms.calc
    if calc is not None and name in getattr(calc, "results", {}):
        return calc.results[name]
    return None


def _as_voigt(value: np.ndarray) -> Optional[np.ndarray]:
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size == 6:
        return value
    if value.size == 9:
        m = value.reshape(3, 3)
        return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
    return None


def frame_from_atoms(atoms: Atoms, keys: KeyMap, field_dim: int, where: str) -> Frame:
    """Read the labels of one ``Atoms``; ``where`` (e.g. ``"data.xyz, frame 3"``) prefixes errors."""
    labels: Dict[str, np.ndarray] = {}
    n = len(atoms)
    energy = _lookup(atoms, keys.energy, per_atom=False)
    if energy is not None:
        value = np.asarray(energy, dtype=np.float64)
        if value.size != 1 or not np.isfinite(value).all():
            raise ValueError(f"{where}: '{keys.energy}' must be one finite number, got {energy!r}")
        labels["energy"] = value.reshape(())
    forces = _lookup(atoms, keys.forces, per_atom=True)
    if forces is not None:
        value = np.asarray(forces, dtype=np.float64)
        if value.shape != (n, 3):
            raise ValueError(f"{where}: '{keys.forces}' has shape {value.shape}, expected ({n}, 3)")
        labels["forces"] = value
    stress = _lookup(atoms, keys.stress, per_atom=False)
    if stress is not None:
        value = _as_voigt(stress)
        if value is None:
            raise ValueError(f"{where}: '{keys.stress}' must have 6 (Voigt) or 9 values")
        if not atoms.pbc.any():
            raise ValueError(f"{where}: has a '{keys.stress}' label but is not periodic")
        labels["stress"] = value
    dipole = _lookup(atoms, keys.dipole, per_atom=False)
    if dipole is not None:
        value = np.asarray(dipole, dtype=np.float64).reshape(-1)
        if value.shape != (3,):
            raise ValueError(f"{where}: '{keys.dipole}' must have 3 values, got {value.size}")
        labels["dipole"] = value
    for name, value in labels.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{where}: label '{name}' has non-finite values")
    field = None
    raw = atoms.info.get(keys.field)
    if field_dim > 0:
        field = np.zeros(field_dim) if raw is None else np.asarray(raw, dtype=np.float64).reshape(-1)
        if field.shape != (field_dim,) or not np.isfinite(field).all():
            raise ValueError(f"{where}: '{keys.field}' must be {field_dim} finite numbers, got {raw!r}")
    return Frame(atoms=atoms, labels=labels, field=field, source=where)


def read_frames(path: Union[str, Path], keys: Optional[KeyMap] = None, field_dim: int = 0, index: str = ":") -> List[Frame]:
    """Read every frame of ``path`` (extxyz or any ASE format) with its labels and field."""
    keys = keys or KeyMap()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    try:
        images = ase.io.read(str(path), index=index)
    except Exception as err:  # ASE raises many types for unreadable files
        raise ValueError(f"{path}: cannot read structures ({type(err).__name__}: {err})") from None
    if isinstance(images, Atoms):
        images = [images]
    frames = [frame_from_atoms(a, keys, field_dim, f"{path}, frame {k}") for k, a in enumerate(images)]
    if not frames:
        raise ValueError(f"{path}: contains no frames")
    found = {name for f in frames for name in f.labels}
    if not found & {"energy", "forces"}:
        raise ValueError(
            f"{path}: no frame has an energy ('{keys.energy}') or forces ('{keys.forces}') label; "
            f"info keys in frame 0: {sorted(images[0].info)}, arrays: {sorted(images[0].arrays)}"
        )
    return frames


def check_species(frames: Sequence[Frame], species: Sequence[str]) -> None:
    """Every element in the data must be one of the model's species (named with its frame)."""
    allowed = set(species)
    for frame in frames:
        for a, symbol in enumerate(frame.atoms.get_chemical_symbols()):
            if symbol not in allowed:
                raise ValueError(f"{frame.source}, atom {a}: element '{symbol}' is not in the model's species {list(species)}")


def species_in(frames: Sequence[Frame]) -> List[str]:
    """Elements present in the data, ordered by atomic number."""
    numbers = sorted({int(z) for f in frames for z in f.atoms.numbers})
    return [chemical_symbols[z] for z in numbers]


def split_frames(frames: Sequence[Frame], val_fraction: float, test_fraction: float, seed: int) -> Tuple[List[Frame], List[Frame], List[Frame]]:
    """Random train/val/test split (reproducible from ``seed``); val and test get at least one frame each
    when their fraction is positive and there are enough frames."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) and sum below 1")
    order = np.random.default_rng(seed).permutation(len(frames))
    n_val = max(1, round(val_fraction * len(frames))) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * len(frames))) if test_fraction > 0 else 0
    if n_val + n_test >= len(frames):
        raise ValueError(f"{len(frames)} frames are too few for a validation and test split")
    val = [frames[k] for k in order[:n_val]]
    test = [frames[k] for k in order[n_val : n_val + n_test]]
    train = [frames[k] for k in order[n_val + n_test :]]
    return train, val, test
