"""θ block by block: norms relative to the scalar part, polar/axial vector directions, and the
principal axes of the rank-2 (2e) part."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from e3nn import o3

from .transform import fibonacci_sphere


def block_norms(irreps: o3.Irreps, theta: np.ndarray) -> Dict[str, float]:
    """{irrep: ||θ_block|| / ||θ_0e||} (all copies of an irrep together; 0e itself is 1)."""
    scalar = float(np.linalg.norm(_block(irreps, theta, "0e")))
    scalar = scalar if scalar > 0 else 1.0
    return {str(ir): float(np.linalg.norm(theta[sl]) / scalar) for (_, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices())}


def _block(irreps: o3.Irreps, theta: np.ndarray, irrep: str) -> np.ndarray:
    for (_, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        if ir == o3.Irrep(irrep):
            return np.asarray(theta[sl])
    return np.zeros(0)


def vector_direction(irreps: o3.Irreps, theta: np.ndarray, irrep: str) -> Optional[List[float]]:
    """Unit vector (x, y, z) of the first copy of an l = 1 block, or None if absent or zero.

    e3nn's l = 1 basis is (x, y, z), so the components are the Cartesian direction. The sign is
    only meaningful where something fixes it (a given field); a learned θ is defined up to the sign
    of the weights that consume it.
    """
    block = _block(irreps, theta, irrep)
    if block.size < 3 or np.linalg.norm(block[:3]) == 0:
        return None
    v = block[:3] / np.linalg.norm(block[:3])
    return [float(x) for x in v]


def quadrupole_matrix(block: np.ndarray) -> np.ndarray:
    """The symmetric traceless 3×3 matrix M with nᵀ M n = Σ_m block_m Y2_m(n) for unit n."""
    points = fibonacci_sphere(40)
    values = o3.spherical_harmonics(2, torch.tensor(points), normalize=True).numpy() @ block
    # Unknowns: the 6 entries of a symmetric matrix; the fit is exact, the trace is removed after.
    design = np.stack([points[:, 0] ** 2, points[:, 1] ** 2, points[:, 2] ** 2,
                       2 * points[:, 1] * points[:, 2], 2 * points[:, 0] * points[:, 2], 2 * points[:, 0] * points[:, 1]], axis=1)
    xx, yy, zz, yz, xz, xy = np.linalg.lstsq(design, values, rcond=None)[0]
    m = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return m - np.trace(m) / 3 * np.eye(3)


def quadrupole_axes(irreps: o3.Irreps, theta: np.ndarray, irrep: str = "2e") -> Optional[Dict]:
    """Eigenvalues and principal axes of the rank-2 block; ``uniaxial_axis`` when two eigenvalues agree."""
    block = _block(irreps, theta, irrep)
    if block.size < 5 or np.linalg.norm(block[:5]) == 0:
        return None
    values, vectors = np.linalg.eigh(quadrupole_matrix(block[:5]))
    spread = max(values[-1] - values[0], 1e-300)
    out = {"eigenvalues": [float(v) for v in values], "axes": [[float(x) for x in vectors[:, k]] for k in range(3)],
           "uniaxial_axis": None}
    if (values[1] - values[0]) / spread < 1e-3:
        out["uniaxial_axis"] = [float(x) for x in vectors[:, 2]]
    elif (values[2] - values[1]) / spread < 1e-3:
        out["uniaxial_axis"] = [float(x) for x in vectors[:, 0]]
    return out


def axis_angle_degrees(a: Optional[List[float]], b: Optional[List[float]]) -> Optional[float]:
    """Angle between two axes (sign ignored), in degrees."""
    if a is None or b is None:
        return None
    return float(np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0))))
