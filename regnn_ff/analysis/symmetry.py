"""The point group that θ preserves: every rotation, reflection and rotoreflection leaving every
layer's θ invariant (within a tolerance), named in Schoenflies notation.

Search: each kind of operation (C2…C6, C∞, mirror, S4/S6/S8) is tried about a dense set of axes;
the best candidates are refined by minimising the invariance error over the axis direction. The
group is then classified from the elements found (the usual flow chart: linear, cubic/icosahedral,
Dn, Cn families).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
from e3nn import o3

from .transform import BlockAction, fibonacci_sphere, operation_matrices

KINDS = ("Cinf", "C2", "C3", "C4", "C5", "C6", "sigma", "S4", "S6", "S8")


@dataclass
class SymmetryElements:
    """Elements found: axes are unit vectors (sign arbitrary)."""

    inversion: bool = False
    rotations: List[Tuple[np.ndarray, float]] = field(default_factory=list)  # (axis, order; inf for C∞)
    mirrors: List[np.ndarray] = field(default_factory=list)  # normals
    rotoreflections: List[Tuple[np.ndarray, int]] = field(default_factory=list)


def _same_axis(a: np.ndarray, b: np.ndarray, cos_tol: float = 0.9995) -> bool:
    return abs(float(np.dot(a, b))) > cos_tol


class StabilizerSearch:
    """Finds the symmetry elements of a list of θ vectors (one per layer) in ``irreps``."""

    def __init__(self, irreps: o3.Irreps, thetas: Sequence[np.ndarray], tolerance: float = 1e-3,
                 grid: int = 1200, candidates: int = 8):
        self.action = BlockAction(irreps)
        self.thetas = np.stack([np.asarray(t, dtype=np.float64) for t in thetas])
        self.scale = max(float(np.abs(self.thetas).max()), 1e-300)
        self.tolerance = tolerance
        directions = fibonacci_sphere(2 * grid)
        self.grid = directions[directions[:, 2] >= 0]  # ±axis are the same axis
        self.candidates = candidates
        self.special = self.special_axes(o3.Irreps(irreps))
        # Points of the unit disk (plus its centre) for the local refinement.
        k = np.arange(120) + 0.5
        r, phi = np.sqrt(k / 120), np.pi * (1 + 5**0.5) * k
        self.disk = np.concatenate([[[0.0, 0.0]], np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)])

    def error(self, matrices: np.ndarray) -> np.ndarray:
        """max over layers and components of |g·θ − θ| / max|θ| for each matrix [G, 3, 3]."""
        moved = self.action.apply(matrices, self.thetas)
        return np.abs(moved - self.thetas[None]).max(axis=(1, 2)) / self.scale

    def kind_error(self, kind: str, axes: np.ndarray) -> np.ndarray:
        return np.max([self.error(m) for m in operation_matrices(kind, axes)], axis=0)

    def refine(self, kind: str, axis: np.ndarray) -> Tuple[np.ndarray, float]:
        """Shrinking local searches around ``axis`` (batched: a few calls, ~1e-6 rad at the end)."""
        best = axis
        best_error = float(self.kind_error(kind, axis[None])[0])
        for radius in 0.12 * 0.2 ** np.arange(8):
            u = np.cross(best, [1.0, 0.0, 0.0] if abs(best[0]) < 0.9 else [0.0, 1.0, 0.0])
            u /= np.linalg.norm(u)
            v = np.cross(best, u)
            trial = best[None] + radius * (self.disk[:, :1] * u + self.disk[:, 1:] * v)
            trial /= np.linalg.norm(trial, axis=1, keepdims=True)
            errors = self.kind_error(kind, trial)
            k = int(np.argmin(errors))
            if errors[k] < best_error:
                best, best_error = trial[k], float(errors[k])
        return best, best_error

    def special_axes(self, irreps: o3.Irreps) -> np.ndarray:
        """Axes θ itself points at: l = 1 vectors, principal axes of l = 2 blocks, and their cross
        products. Tried before the grid, so a weakly broken symmetry is not lost among near-misses."""
        from .blocks import quadrupole_matrix

        axes = [np.eye(3)[k] for k in range(3)]
        for theta in self.thetas:
            for (mul, ir), sl in zip(irreps, irreps.slices()):
                for copy in theta[sl].reshape(mul, ir.dim):
                    if np.linalg.norm(copy) == 0:
                        continue
                    if ir.l == 1:
                        axes.append(copy)
                    elif ir.l == 2:
                        axes.extend(np.linalg.eigh(quadrupole_matrix(copy))[1].T)
        axes = [a / np.linalg.norm(a) for a in axes]
        crosses = [np.cross(a, b) for k, a in enumerate(axes) for b in axes[k + 1 :]]
        axes += [c / np.linalg.norm(c) for c in crosses if np.linalg.norm(c) > 1e-3]
        return np.array(axes)

    def axes_for(self, kind: str) -> List[np.ndarray]:
        """Refined axes about which the operation ``kind`` leaves θ invariant."""
        found: List[np.ndarray] = []
        special_errors = self.kind_error(kind, self.special)
        for axis, error in zip(self.special, special_errors):
            if error < self.tolerance and not any(_same_axis(axis, f) for f in found):
                found.append(axis)
        errors = self.kind_error(kind, self.grid)
        tried: List[np.ndarray] = list(found)
        for index in np.argsort(errors):
            if len(tried) >= self.candidates + len(found) or errors[index] > 0.4:
                break
            start = self.grid[index]
            if any(_same_axis(start, t, np.cos(np.radians(8))) for t in tried):
                continue
            tried.append(start)
            axis, error = self.refine(kind, start)
            if error < self.tolerance and not any(_same_axis(axis, f) for f in found):
                found.append(axis)
        return found

    def elements(self) -> SymmetryElements:
        out = SymmetryElements()
        out.inversion = bool(self.error(-np.eye(3)[None])[0] < self.tolerance)
        for kind in KINDS:
            for axis in self.axes_for(kind):
                if kind == "sigma":
                    out.mirrors.append(axis)
                elif kind.startswith("S"):
                    out.rotoreflections.append((axis, int(kind[1:])))
                else:
                    order = np.inf if kind == "Cinf" else int(kind[1:])
                    for k, (existing, old) in enumerate(out.rotations):
                        if _same_axis(existing, axis):
                            if order > old or (order != np.inf and old != np.inf and order % old == 0):
                                out.rotations[k] = (existing, max(order, old) if old != np.inf else old)
                            break
                    else:
                        out.rotations.append((axis, order))
        return out


def _perpendicular(a: np.ndarray, b: np.ndarray) -> bool:
    return abs(float(np.dot(a, b))) < 0.02


def classify(el: SymmetryElements) -> str:
    """Schoenflies symbol of the group generated by the elements found."""
    infinite = [a for a, n in el.rotations if n == np.inf]
    if len(infinite) >= 2:
        return "O(3)" if el.inversion else "SO(3)"
    if infinite:
        axis = infinite[0]
        horizontal = el.inversion or any(_same_axis(m, axis) for m in el.mirrors)
        if any(_perpendicular(m, axis) for m in el.mirrors):
            return "D∞h" if horizontal else "C∞v"
        if horizontal:
            return "C∞h"
        if any(n == 2 and _perpendicular(a, axis) for a, n in el.rotations):
            return "D∞"
        return "C∞"
    high = [(a, n) for a, n in el.rotations if n >= 3]
    if len(high) >= 2:
        orders = {n for _, n in high}
        if 5 in orders:
            return "Ih" if el.inversion else "I"
        if 4 in orders:
            return "Oh" if el.inversion else "O"
        if el.inversion:
            return "Th"
        return "Td" if el.mirrors else "T"
    if not el.rotations:
        if el.mirrors:
            return "Cs"
        return "Ci" if el.inversion else "C1"
    # Principal axis: the highest order; among equal orders (D2) any.
    axis, n = max(el.rotations, key=lambda an: an[1])
    n = int(n)
    perpendicular_c2 = [a for a, m in el.rotations if m % 2 == 0 and _perpendicular(a, axis)]
    horizontal_mirror = any(_same_axis(m, axis) for m in el.mirrors)
    vertical_mirrors = [m for m in el.mirrors if _perpendicular(m, axis)]
    if len(perpendicular_c2) >= (n if n > 2 else 2):
        if horizontal_mirror:
            return f"D{n}h"
        return f"D{n}d" if vertical_mirrors else f"D{n}"
    if horizontal_mirror:
        return f"C{n}h"
    if vertical_mirrors:
        return f"C{n}v"
    if any(_same_axis(a, axis) and m == 2 * n for a, m in el.rotoreflections):
        return f"S{2 * n}"
    return f"C{n}"


def point_group(irreps: o3.Irreps, thetas: Sequence[np.ndarray], tolerance: float = 1e-3) -> Tuple[str, SymmetryElements]:
    """(Schoenflies symbol, elements) of the group leaving every θ in ``thetas`` invariant."""
    irreps = o3.Irreps(irreps)
    thetas = [np.asarray(t, dtype=np.float64) for t in thetas]
    non_scalar = [sl for (_, ir), sl in zip(irreps, irreps.slices()) if ir != o3.Irrep("0e")]
    if all(np.abs(t[sl]).max(initial=0.0) == 0 for t in thetas for sl in non_scalar):
        return "O(3)", SymmetryElements(inversion=True)
    only_pseudo = [sl for (_, ir), sl in zip(irreps, irreps.slices()) if ir not in (o3.Irrep("0e"), o3.Irrep("0o"))]
    if all(np.abs(t[sl]).max(initial=0.0) == 0 for t in thetas for sl in only_pseudo):
        return "SO(3)", SymmetryElements()
    # Blocks that are zero in every layer are invariant under everything: leave them out.
    kept = [(mul, ir, sl) for (mul, ir), sl in zip(irreps, irreps.slices()) if any(np.abs(t[sl]).max() > 0 for t in thetas)]
    reduced = o3.Irreps([(mul, ir) for mul, ir, _ in kept])
    vectors = [np.concatenate([t[sl] for _, _, sl in kept]) for t in thetas]
    elements = StabilizerSearch(reduced, vectors, tolerance).elements()
    return classify(elements), elements
