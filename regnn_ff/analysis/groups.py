"""Candidate point groups for θ, and the exact projection of θ onto each group's invariant subspace.

A group G acts on θ's irreps through D(g); the θ that G leaves invariant form the subspace whose
projector is the group average P_G = mean_g D(g). For the continuous groups (C∞ and the groups
built on it) the average over N equally spaced rotations about the axis is the same projector for
every l < N (the m ≠ 0 components average to zero), so every group here is a finite list of
elements, and a projected θ is invariant under the whole group to rounding.

Each group is placed by a frame F (its principal axis F[:, 2], its secondary axis F[:, 0]); the
frame is fitted to θ by minimising the part of θ outside the invariant subspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from e3nn import o3
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from .transform import BlockAction, fibonacci_sphere


def _rz(angles: np.ndarray) -> np.ndarray:
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros((len(angles), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


_MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # normal x: a vertical mirror (contains z)
_MIRROR_Z = np.diag([1.0, 1.0, -1.0])  # normal z: the horizontal mirror
_C2_X = np.diag([1.0, -1.0, -1.0])


def _cyclic(n: int) -> np.ndarray:
    return _rz(2 * np.pi * np.arange(n) / n)


def _with(elements: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """The elements, and each of them composed with ``extra``."""
    return np.concatenate([elements, elements @ extra])


@dataclass(frozen=True)
class CandidateGroup:
    """A point group in its standard frame (principal axis z, secondary axis x).

    ``elements(n)`` lists its elements with ``n``-fold sampling of a continuous rotation; ``placed``
    says what fixes the group's orientation: ``None`` (O(3), SO(3)), ``"axis"`` (only z matters) or
    ``"frame"`` (z and x).
    """

    name: str
    placed: Optional[str]
    elements: Callable[[int], np.ndarray]


#: Candidates from the most symmetric down; among groups whose projections coincide for θ's
#: irreps (e.g. D4h and D∞h for l ≤ 2) the earlier, larger one is named.
CANDIDATES: List[CandidateGroup] = [
    CandidateGroup("O(3)", None, lambda n: np.eye(3)[None]),
    CandidateGroup("SO(3)", None, lambda n: np.eye(3)[None]),
    CandidateGroup("D∞h", "axis", lambda n: _with(_with(_cyclic(n), _MIRROR_X), -np.eye(3))),
    CandidateGroup("C∞v", "axis", lambda n: _with(_cyclic(n), _MIRROR_X)),
    CandidateGroup("C∞h", "axis", lambda n: _with(_cyclic(n), _MIRROR_Z)),
    CandidateGroup("D∞", "axis", lambda n: _with(_cyclic(n), _C2_X)),
    CandidateGroup("C∞", "axis", lambda n: _cyclic(n)),
    CandidateGroup("D4h", "frame", lambda n: _with(_with(_cyclic(4), _MIRROR_X), -np.eye(3))),
    CandidateGroup("C4v", "frame", lambda n: _with(_cyclic(4), _MIRROR_X)),
    CandidateGroup("D2h", "frame", lambda n: _with(_with(_cyclic(2), _MIRROR_X), -np.eye(3))),
    CandidateGroup("C2v", "frame", lambda n: _with(_cyclic(2), _MIRROR_X)),
    CandidateGroup("C2h", "axis", lambda n: _with(_cyclic(2), -np.eye(3))),
    CandidateGroup("C2", "axis", lambda n: _cyclic(2)),
    CandidateGroup("Cs", "axis", lambda n: np.stack([np.eye(3), _MIRROR_Z])),
    CandidateGroup("Ci", None, lambda n: np.stack([np.eye(3), -np.eye(3)])),
    CandidateGroup("C1", None, lambda n: np.eye(3)[None]),
]
GROUP_NAMES = [g.name for g in CANDIDATES]


def candidate(name: str) -> CandidateGroup:
    """The candidate group called ``name`` (Schoenflies; ``Cinfv`` etc. accepted for C∞v)."""
    wanted = name.replace("inf", "∞")
    for group in CANDIDATES:
        if group.name == wanted:
            return group
    raise ValueError(f"unknown group '{name}'; known: {', '.join(GROUP_NAMES)}")


@dataclass
class Projection:
    """θ of every layer projected onto one group's invariant subspace, in a fitted frame."""

    group: str
    frame: np.ndarray  # [3, 3]: columns = secondary axis, third axis, principal axis (lab frame)
    thetas: List[np.ndarray]
    invariant_dim: int  # dimension of the invariant subspace of θ's irreps (smaller = more symmetric)
    block_residuals: Dict[str, float]  # per irrep: |θ_block − Pθ_block| / |θ_block| (worst layer; 0 for zero blocks)

    @property
    def axis(self) -> Optional[List[float]]:
        return None if self.frame is None else [float(x) for x in self.frame[:, 2]]


class GroupProjector:
    """Projects θ (one vector per layer, in ``irreps``) onto candidate groups, fitting their frames."""

    def __init__(self, irreps: o3.Irreps, thetas: Sequence[np.ndarray]):
        self.irreps = o3.Irreps(irreps)
        self.action = BlockAction(self.irreps)
        self.thetas = np.stack([np.asarray(t, dtype=np.float64) for t in thetas])
        self.l_max = max(ir.l for _, ir in self.irreps)
        self.samples = 2 * self.l_max + 2  # any count above l_max averages C∞ exactly
        self.scalar = np.zeros(self.irreps.dim, dtype=bool)
        self.pseudoscalar = np.zeros(self.irreps.dim, dtype=bool)
        for (_, ir), sl in zip(self.irreps, self.irreps.slices()):
            self.scalar[sl] = ir == o3.Irrep("0e")
            self.pseudoscalar[sl] = ir == o3.Irrep("0o")

    def project(self, group: CandidateGroup, frame: Optional[np.ndarray],
                thetas: Optional[np.ndarray] = None) -> np.ndarray:
        """P_G θ for every layer, the group placed by ``frame`` -> [layers, dim]; ``thetas`` (same
        irreps) instead of the θ this projector was built with."""
        thetas = self.thetas if thetas is None else np.asarray(thetas, dtype=np.float64)
        if group.name in ("O(3)", "SO(3)"):
            keep = self.scalar | (self.pseudoscalar if group.name == "SO(3)" else False)
            return thetas * keep
        f = np.eye(3) if frame is None else frame
        elements = f @ group.elements(self.samples) @ f.T
        return self.action.apply(elements, thetas).mean(axis=0)

    def invariant_dim(self, group: CandidateGroup) -> int:
        """Trace of the projector: how many independent numbers a G-invariant θ has."""
        if group.name in ("O(3)", "SO(3)"):
            return int(self.scalar.sum() + (self.pseudoscalar.sum() if group.name == "SO(3)" else 0))
        elements = group.elements(self.samples)
        basis = np.eye(self.irreps.dim)
        return int(round(float(np.einsum("gii->", self.action.apply(elements, basis)) / len(elements))))

    def _residual(self, group: CandidateGroup, frame: np.ndarray) -> float:
        return float(((self.thetas - self.project(group, frame)) ** 2).sum())

    def fit(self, group: CandidateGroup) -> Projection:
        """The group's frame that keeps the most of θ, and θ projected in it."""
        frame = None if group.placed is None else self._fit_frame(group)
        projected = self.project(group, frame)
        residuals = {}
        for (_, ir), sl in zip(self.irreps, self.irreps.slices()):
            norm = np.linalg.norm(self.thetas[:, sl], axis=1)
            moved = np.linalg.norm(self.thetas[:, sl] - projected[:, sl], axis=1)
            residuals[str(ir)] = float(max((m / n if n > 0 else 0.0) for m, n in zip(moved, norm)))
        return Projection(group.name, frame, [p for p in projected], self.invariant_dim(group), residuals)

    def _starting_frames(self, group: CandidateGroup) -> List[np.ndarray]:
        """Frames whose principal axis is one of θ's own directions or a grid point."""
        from .symmetry import StabilizerSearch

        axes = list(StabilizerSearch(self.irreps, list(self.thetas), grid=1).special_axes(self.irreps))
        grid = fibonacci_sphere(300)
        axes += [a for a in grid if a[2] >= 0]
        frames = []
        for axis in axes:
            z = axis / np.linalg.norm(axis)
            helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            x = np.cross(helper, z)
            x /= np.linalg.norm(x)
            base = np.stack([x, np.cross(z, x), z], axis=1)
            if group.placed == "frame":  # the secondary axis too: a few turns about z
                frames += [base @ _rz(np.array([a]))[0] for a in np.linspace(0, np.pi, 6, endpoint=False)]
            else:
                frames.append(base)
        return frames

    def _fit_frame(self, group: CandidateGroup) -> np.ndarray:
        starts = self._starting_frames(group)
        elements = group.elements(self.samples)
        # All starting frames at once: [frames · elements, 3, 3].
        stacked = np.einsum("fij,gjk,flk->fgil", np.array(starts), elements, np.array(starts)).reshape(-1, 3, 3)
        moved = self.action.apply(stacked, self.thetas).reshape(len(starts), len(elements), *self.thetas.shape)
        scores = ((self.thetas[None] - moved.mean(axis=1)) ** 2).sum(axis=(1, 2))
        best, best_score = starts[int(np.argmin(scores))], float(scores.min())
        for index in np.argsort(scores)[:2]:
            start = starts[int(index)]

            def objective(v, start=start):
                return self._residual(group, Rotation.from_rotvec(v).as_matrix() @ start)

            result = minimize(objective, np.zeros(3), method="Nelder-Mead",
                              options={"xatol": 1e-8, "fatol": 1e-20, "maxiter": 600})
            if result.fun < best_score:
                best, best_score = Rotation.from_rotvec(result.x).as_matrix() @ start, float(result.fun)
        return best
