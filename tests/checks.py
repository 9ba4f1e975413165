"""Reusable model checks: group actions on structures and fields, relative errors, small models.

Every model variant in the suite goes through the same helpers, so a new variant is one line.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from e3nn import o3

from regnn_ff import RelaxedPotential

SPECIES = ["H", "C", "O"]


def small_model(seed: int = 0, dtype=torch.float64, **overrides) -> RelaxedPotential:
    """A small random model (8 channels, l_max 2, 2 layers, r_max 4 Å) for exact checks."""
    torch.manual_seed(seed)
    config = dict(species=SPECIES, r_max=4.0, channels=8, radial_hidden=16, avg_num_neighbors=8.0)
    config.update(overrides)
    return RelaxedPotential(config).to(dtype).eval()


def broken_water_model(field: bool = True) -> RelaxedPotential:
    """A float64 H/O model (8 channels, r_max 3 Å, a last block of 2.5 Å, 2 layers, E-field input unless
    ``field=False``) whose θ breaks the symmetry, so the lab frame matters: for checks that decompose a system."""
    torch.manual_seed(0)
    config = dict(species=["H", "O"], channels=8, r_max=3.0, last_r_max=2.5, num_layers=2, l_relaxed=1,
                  field_irreps="1x1o" if field else None)
    model = RelaxedPotential(config).double().eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.source.theta.add_(0.3 * torch.randn_like(layer.source.theta))
    return model


def molecule_cluster(seed: int = 0) -> Atoms:
    """A small non-periodic cluster of H, C, O with no symmetry."""
    rng = np.random.default_rng(seed)
    symbols = ["C", "O", "H", "H", "C", "H", "O", "H"]
    positions = rng.uniform(-1.6, 1.6, size=(len(symbols), 3))
    return Atoms(symbols, positions=positions)


def triclinic_crystal(seed: int = 0) -> Atoms:
    """A periodic, non-orthogonal cell with 5 atoms, smaller than 2 r_max (atoms see their images)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.2, 0.0, 0.0], [0.9, 3.0, 0.0], [0.4, 0.7, 3.4]])
    frac = rng.uniform(0, 1, size=(5, 3))
    return Atoms(["C", "O", "H", "H", "O"], scaled_positions=frac, cell=cell, pbc=True)


def random_orthogonal(seed: int, improper: bool) -> np.ndarray:
    """A random element of O(3) (float64); ``improper`` gives det = -1 (a rotoreflection)."""
    torch.manual_seed(seed)
    rotation = o3.rand_matrix(dtype=torch.float64).numpy()
    return -rotation if improper else rotation


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rotation matrix about a unit ``axis`` by ``angle`` radians."""
    return o3.axis_angle_to_matrix(torch.tensor(axis, dtype=torch.float64), torch.tensor(angle, dtype=torch.float64)).numpy()


def mirror(normal) -> np.ndarray:
    """Reflection through the plane with the given normal."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    return np.eye(3) - 2.0 * np.outer(n, n)


def act(atoms: Atoms, g: np.ndarray) -> Atoms:
    """Apply g ∈ O(3) to positions and cell vectors."""
    out = atoms.copy()
    out.positions = atoms.positions @ g.T
    if atoms.pbc.any():
        out.set_cell(atoms.cell.array @ g.T, scale_atoms=False)
    return out


def wigner_d(irrep: o3.Irrep, g: np.ndarray) -> np.ndarray:
    """Representation matrix of ``irrep`` at g ∈ O(3), exact in float64.

    e3nn's ``D_from_matrix`` is only accurate to ~4e-7 (float32 constants), too coarse for 1e-9
    checks, so D is solved from the spherical harmonics themselves: Y(R x) = D Y(x).
    """
    det = np.linalg.det(g)
    proper = torch.as_tensor(g * det, dtype=torch.float64)
    x = torch.randn(4 * irrep.dim + 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = o3.spherical_harmonics(irrep.l, x, normalize=True)
    y_moved = o3.spherical_harmonics(irrep.l, x @ proper.T, normalize=True)
    d = torch.linalg.lstsq(y, y_moved).solution.T.numpy()
    return d * (irrep.p if det < 0 else 1)


def act_on_field(field, irreps: str, g: np.ndarray) -> np.ndarray:
    """Apply g to a field vector in the given irreps (1o: g v, 1e: det(g) g v, ...)."""
    field = np.asarray(field, dtype=np.float64)
    out = np.empty_like(field)
    for (mul, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        d = wigner_d(ir, g)
        out[..., sl] = (field[..., sl].reshape(*field.shape[:-1], mul, ir.dim) @ d.T).reshape(field[..., sl].shape)
    return out


def voigt_to_matrix(s: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (with a floor so that zero references do not divide by zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def equivariance_errors(model: RelaxedPotential, atoms: Atoms, g: np.ndarray, field=None, properties=None) -> dict:
    """Relative errors of f(g X, g field) against g · f(X, field) for each property."""
    if properties is None:
        properties = ["energy", "forces"]
        if atoms.pbc.any():
            properties.append("stress")
        if field is not None and model.dipole_start >= 0:
            properties.append("dipole")
    ref = model.compute(atoms, field=field, properties=properties)
    moved_field = None if field is None else act_on_field(field, model.config.field_irreps, g)
    out = model.compute(act(atoms, g), field=moved_field, properties=properties)
    errors = {"energy": rel_err(out["energy"], ref["energy"])}
    if "forces" in properties:
        errors["forces"] = rel_err(out["forces"], ref["forces"] @ g.T)
    if "stress" in properties:
        expected = g @ voigt_to_matrix(ref["stress"]) @ g.T
        errors["stress"] = rel_err(voigt_to_matrix(out["stress"]), expected)
    if "dipole" in properties:
        errors["dipole"] = rel_err(out["dipole"], ref["dipole"] @ g.T)
    return errors


def set_theta_block(model: RelaxedPotential, irrep: str, values) -> None:
    """Set θ of every layer to 1 on 0e, ``values`` on the block ``irrep`` and 0 elsewhere."""
    irreps = o3.Irreps(model.relaxed_irreps())
    weights = []
    for theta in model.relaxed_weights():
        theta = torch.zeros_like(theta)
        for (_, ir), sl in zip(irreps, irreps.slices()):
            if ir == o3.Irrep("0e"):
                theta[sl] = 1.0
            if ir == o3.Irrep(irrep):
                theta[sl] = torch.as_tensor(values, dtype=theta.dtype)
        weights.append(theta)
    model.set_relaxed_weights(weights)


def irreps_matrix(irreps, g: np.ndarray) -> np.ndarray:
    """Block-diagonal representation matrix of ``irreps`` at g ∈ O(3) (exact, float64)."""
    blocks = [wigner_d(ir, g) for mul, ir in o3.Irreps(irreps) for _ in range(mul)]
    size = sum(b.shape[0] for b in blocks)
    out, k = np.zeros((size, size)), 0
    for b in blocks:
        out[k : k + b.shape[0], k : k + b.shape[0]] = b
        k += b.shape[0]
    return out


def module_equivariance_error(module, x: torch.Tensor, g: np.ndarray, *args) -> float:
    """Relative error of module(D_in(g) x, *args) against D_out(g) module(x, *args), for a module
    declaring ``irreps_in`` / ``irreps_out`` and acting on channel-major features [N, C, D]."""
    d_in = torch.as_tensor(irreps_matrix(module.irreps_in, g), dtype=x.dtype)
    d_out = torch.as_tensor(irreps_matrix(module.irreps_out, g), dtype=x.dtype)
    moved = module(x @ d_in.T, *args)
    expected = module(x, *args) @ d_out.T
    return rel_err(moved.detach().double().numpy(), expected.detach().double().numpy())
