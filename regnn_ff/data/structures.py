"""Small built-in structures for examples, tests and benchmarks."""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

#: Mass density of liquid water at 298 K, g/cm³.
WATER_DENSITY = 0.997
_AMU_PER_G = 6.02214076e23
_ANGSTROM3_PER_CM3 = 1e24


def water_box(n_molecules: int = 64, density: float = WATER_DENSITY, seed: int = 0) -> Atoms:
    """A periodic cubic box of ``n_molecules`` randomly oriented rigid waters at ``density`` (g/cm³).

    Molecules sit on a simple cubic lattice (~3.1 Å apart at liquid density), so no two atoms of
    different molecules come closer than about 1.5 Å. Positions in Å.
    """
    if n_molecules < 1:
        raise ValueError(f"n_molecules must be >= 1, got {n_molecules}")
    water = molecule("H2O")
    mass = water.get_masses().sum() * n_molecules / _AMU_PER_G  # g
    length = (mass / density * _ANGSTROM3_PER_CM3) ** (1.0 / 3.0)
    per_side = math.ceil(n_molecules ** (1.0 / 3.0) - 1e-9)
    spacing = length / per_side
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(per_side) for j in range(per_side) for k in range(per_side)])
    sites = grid[rng.permutation(len(grid))[:n_molecules]]
    centred = water.positions - water.get_center_of_mass()
    rotations = Rotation.random(n_molecules, random_state=rng).as_matrix()
    positions = np.concatenate([centred @ r.T + (s + 0.5) * spacing for r, s in zip(rotations, sites)])
    symbols = water.get_chemical_symbols() * n_molecules
    return Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)
