"""How O(3) elements act on θ, exactly and in batches, in e3nn's real basis.

For an irrep block (l, p), D(g) = p^[det g < 0] · D_l(R) with R = det(g)·g proper, and D_l is
solved from the spherical harmonics (Y_l(R x) = D_l(R) Y_l(x)) at fixed sample points, which is
exact in float64 (e3nn's ``D_from_matrix`` carries float32 constants, ~4e-7 off).
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch
from e3nn import o3


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors [n, 3]."""
    k = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * k / n)
    azimuth = np.pi * (1 + 5**0.5) * k
    return np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1)


class BlockAction:
    """Applies batches of O(3) elements to vectors in ``irreps`` (θ of one or several layers)."""

    def __init__(self, irreps: o3.Irreps, samples: int = 48):
        self.irreps = o3.Irreps(irreps)
        self.blocks = []  # (start, l, parity) per irrep instance
        start = 0
        for mul, ir in self.irreps:
            for _ in range(mul):
                self.blocks.append((start, ir.l, ir.p))
                start += ir.dim
        self.dim = start
        self.points = torch.tensor(fibonacci_sphere(samples), dtype=torch.float64)
        self.pinv: Dict[int, torch.Tensor] = {}
        for l in {l for _, l, _ in self.blocks}:
            y = o3.spherical_harmonics(l, self.points, normalize=True)
            self.pinv[l] = torch.linalg.pinv(y)  # [2l+1, samples]

    def matrices(self, g: np.ndarray) -> Dict[int, torch.Tensor]:
        """D_l(R)ᵀ for each l, for g [G, 3, 3] (R = det(g)·g)."""
        g = torch.as_tensor(np.asarray(g, dtype=np.float64))
        det = torch.sign(torch.linalg.det(g))
        proper = g * det[:, None, None]
        moved = torch.einsum("kj,gij->gki", self.points, proper)  # R x for each sample point
        ls = sorted(self.pinv)
        # One call for all l (e3nn builds higher l from lower ones anyway), then slices per l.
        y = o3.spherical_harmonics(ls, moved, normalize=True)
        out, start = {}, 0
        for l in ls:
            out[l] = torch.einsum("mk,gkn->gmn", self.pinv[l], y[..., start : start + 2 * l + 1])
            start += 2 * l + 1
        return out, det

    def apply(self, g: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """g [G, 3, 3] acting on vectors [V, dim] -> [G, V, dim]."""
        d_t, det = self.matrices(np.asarray(g).reshape(-1, 3, 3))
        v = torch.as_tensor(np.asarray(vectors, dtype=np.float64)).reshape(-1, self.dim)
        out = torch.empty(det.shape[0], v.shape[0], self.dim, dtype=torch.float64)
        for start, l, p in self.blocks:
            sl = slice(start, start + 2 * l + 1)
            sign = torch.where(det < 0, torch.tensor(float(p), dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
            out[:, :, sl] = torch.einsum("vm,gmn->gvn", v[:, sl], d_t[l]) * sign[:, None, None]
        return out.numpy()


def rotations(axes: np.ndarray, angle: float) -> np.ndarray:
    """Rotations by ``angle`` about each of ``axes`` [G, 3] (unit vectors) -> [G, 3, 3]."""
    n = np.asarray(axes, dtype=np.float64)
    k = np.zeros((len(n), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -n[:, 2], n[:, 1], -n[:, 0]
    k = k - k.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def reflections(axes: np.ndarray) -> np.ndarray:
    """Mirrors through the planes with normals ``axes`` [G, 3] (unit vectors) -> [G, 3, 3]."""
    n = np.asarray(axes, dtype=np.float64)
    return np.eye(3) - 2.0 * n[:, :, None] * n[:, None, :]


def operation_matrices(kind: str, axes: np.ndarray) -> List[np.ndarray]:
    """Matrices of a symmetry-operation kind about each axis: ``C2``…``C6``, ``Cinf`` (two generic
    angles), ``sigma`` (mirror with that normal), ``S4``/``S6``/``S8`` (rotoreflections)."""
    if kind == "Cinf":
        return [rotations(axes, 0.7071), rotations(axes, 2.2361)]
    if kind.startswith("C"):
        return [rotations(axes, 2 * np.pi / int(kind[1:]))]
    if kind == "sigma":
        return [reflections(axes)]
    if kind.startswith("S"):
        n = int(kind[1:])
        return [np.einsum("gij,gjk->gik", reflections(axes), rotations(axes, 2 * np.pi / n))]
    raise ValueError(kind)
