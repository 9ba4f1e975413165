"""Reference labels from GFN2-xTB (``tblite``) under applied electric fields, and sampling of
field-dependent configurations by xTB molecular dynamics.

tblite works in atomic units; the conversions to Å, eV, e·Å and V/Å happen here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import ase.io
import numpy as np
from ase import Atoms, units
from ase.build import molecule as ase_molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from scipy.spatial.transform import Rotation

from ..atomic import atomic_path
from .units import V_PER_ANGSTROM_PER_AU


def xtb_singlepoint(atoms: Atoms, field: Optional[Sequence[float]] = None, method: str = "GFN2-xTB",
                    charge: float = 0.0) -> Dict[str, np.ndarray]:
    """Energy (eV), forces (eV/Å) and dipole (e·Å) of a molecule in a uniform field (V/Å)."""
    from tblite.interface import Calculator as TBLite
    from tblite.library import ffi

    if atoms.pbc.any():
        raise ValueError("xTB labelling here is for molecules (pbc = False); the structure is periodic")
    calc = TBLite(method, atoms.numbers, atoms.positions / units.Bohr, charge=charge)
    calc.set("verbosity", 0)
    if field is not None:
        field_au = np.ascontiguousarray(np.asarray(field, dtype=np.float64).reshape(3) / V_PER_ANGSTROM_PER_AU)
        # tblite takes the field as a C pointer to three doubles; the array must outlive the call.
        calc.add("electric-field", ffi.cast("double*", field_au.ctypes.data))
    result = calc.singlepoint()
    return {
        "energy": float(result.get("energy")) * units.Hartree,
        "forces": -np.asarray(result.get("gradient")) * units.Hartree / units.Bohr,
        "dipole": np.asarray(result.get("dipole")) * units.Bohr,
    }


class XTBFieldCalculator(Calculator):
    """ASE calculator for GFN2-xTB in a uniform electric field (V/Å), used to sample configurations."""

    implemented_properties = ["energy", "free_energy", "forces", "dipole"]

    def __init__(self, field: Optional[Sequence[float]] = None, method: str = "GFN2-xTB", **kwargs):
        super().__init__(**kwargs)
        self.field = None if field is None else np.asarray(field, dtype=np.float64)
        self.method = method

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        out = xtb_singlepoint(self.atoms, self.field, self.method)
        self.results = {"energy": out["energy"], "free_energy": out["energy"], "forces": out["forces"], "dipole": out["dipole"]}


def labelled(atoms: Atoms, field: Optional[Sequence[float]], method: str = "GFN2-xTB") -> Atoms:
    """A copy of ``atoms`` with xTB energy, forces and dipole attached, and ``info['field']`` (V/Å)."""
    out = atoms.copy()
    field_arr = np.zeros(3) if field is None else np.asarray(field, dtype=np.float64).reshape(3)
    res = xtb_singlepoint(out, field_arr, method)
    out.info["field"] = field_arr
    out.calc = SinglePointCalculator(out, energy=res["energy"], forces=res["forces"], dipole=res["dipole"])
    return out


def label_file(input_path: Union[str, Path], output_path: Union[str, Path], field_key: str = "field",
               method: str = "GFN2-xTB") -> int:
    """Label every frame of ``input_path`` under its own ``info[field_key]`` (V/Å, zero if absent).

    Writes extxyz to ``output_path`` (atomically) and returns the number of frames.
    """
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such structures file")
    images = ase.io.read(str(input_path), index=":")
    out = []
    for k, atoms in enumerate(images):
        field = atoms.info.get(field_key)
        try:
            out.append(labelled(atoms, None if field is None else np.asarray(field, dtype=np.float64), method))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{input_path}, frame {k}: {err}") from None
    write_frames(out, output_path)
    return len(out)


def write_frames(images: List[Atoms], path: Union[str, Path]) -> None:
    """Write extxyz atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        ase.io.write(str(tmp), images, format="extxyz")


def as_molecule(name_or_path: Union[str, Atoms]) -> Atoms:
    """An ASE molecule name (``"H2O"``), a structure file, or an ``Atoms``."""
    if isinstance(name_or_path, Atoms):
        return name_or_path.copy()
    if Path(name_or_path).is_file():
        return ase.io.read(str(name_or_path))
    try:
        return ase_molecule(name_or_path)
    except KeyError:
        raise ValueError(f"'{name_or_path}' is neither a structure file nor an ASE molecule name") from None


def sample_configurations(
    molecule: Union[str, Atoms],
    n_frames: int,
    temperature: float = 300.0,
    field_max: float = 0.0,
    fixed_field: Optional[Sequence[float]] = None,
    stride: int = 10,
    timestep: float = 0.5,
    rotate: bool = True,
    seed: int = 0,
    method: str = "GFN2-xTB",
) -> List[Atoms]:
    """Labelled configurations of a molecule from xTB Langevin MD.

    Args:
        molecule: ASE molecule name, structure file, or ``Atoms``.
        n_frames: number of frames returned.
        temperature: MD temperature (K).
        field_max: each frame gets a random field direction with magnitude uniform in
            [0, field_max] (V/Å), unless ``fixed_field`` is given.
        fixed_field: one field (V/Å) for the MD and every frame, e.g. to hide it from a model.
        stride: MD steps between frames; ``timestep`` in fs.
        rotate: give every frame a random orientation (the field keeps its lab-frame direction).
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not (np.isfinite(field_max) and field_max >= 0):
        raise ValueError(f"field_max must be a finite number >= 0 (V/Å), got {field_max}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (K), got {temperature}")
    if fixed_field is not None:
        fixed_field = np.asarray(fixed_field, dtype=np.float64).reshape(-1)
        if fixed_field.shape != (3,) or not np.isfinite(fixed_field).all():
            raise ValueError(f"the fixed field must be 3 finite numbers (V/Å), got {fixed_field.tolist()}")
    rng = np.random.default_rng(seed)
    atoms = as_molecule(molecule)
    atoms.pbc = False
    atoms.calc = XTBFieldCalculator(fixed_field, method)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    atoms.set_constraint(FixCom())  # a net force from the field must not drift the molecule away
    dyn = Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
    frames = []
    for _ in range(n_frames):
        dyn.run(stride)
        snapshot = Atoms(atoms.numbers, positions=atoms.get_positions() - atoms.get_center_of_mass())
        if rotate:
            snapshot.positions = snapshot.positions @ Rotation.random(random_state=rng).as_matrix().T
        if fixed_field is not None:
            field = np.asarray(fixed_field, dtype=np.float64)
        else:
            direction = rng.normal(size=3)
            field = direction / np.linalg.norm(direction) * rng.uniform(0.0, field_max)
        frames.append(labelled(snapshot, field, method))
    return frames
