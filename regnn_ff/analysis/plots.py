"""Spherical-signal pictures of θ: the true-tensor part (natural parity: 0e, 1o, 2e, …) and the
pseudo-tensor part (0o, 1e, 2o, …) of each layer as functions on the sphere."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from e3nn import o3

from ..atomic import atomic_path


def sphere_signal(irreps: o3.Irreps, theta: np.ndarray, natural: bool, resolution: int = 90):
    """f(polar, azimuth) = Σ θ_block · Y_l over the blocks of one parity class; grid [res, 2·res]."""
    polar = np.linspace(0, np.pi, resolution)
    azimuth = np.linspace(-np.pi, np.pi, 2 * resolution)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    points = torch.tensor(np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)], axis=-1))
    signal = np.zeros(p.shape)
    for (mul, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        if (ir.p == (-1) ** ir.l) != natural or ir.l == 0 and natural:
            continue  # the constant 0e part is left out so the anisotropy is visible
        y = o3.spherical_harmonics(ir.l, points, normalize=True).numpy()
        coefficients = np.asarray(theta[sl]).reshape(mul, ir.dim).sum(axis=0)
        signal += y @ coefficients
    return polar, azimuth, signal


def plot_layers(irreps: o3.Irreps, thetas: Sequence[np.ndarray], path: Path) -> Path:
    """One row per layer, true-tensor and pseudo-tensor parts side by side; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(thetas), 2, figsize=(9, 2.6 * len(thetas)), squeeze=False)
    for k, theta in enumerate(thetas):
        for column, (natural, title) in enumerate(((True, "true tensor (1o, 2e, …)"), (False, "pseudo tensor (0o, 1e, 2o, …)"))):
            polar, azimuth, signal = sphere_signal(irreps, theta, natural)
            ax = axes[k, column]
            limit = max(np.abs(signal).max(), 1e-12)
            image = ax.imshow(signal, extent=[-180, 180, 180, 0], cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
            ax.set_title(f"layer {k}: {title}", fontsize=9)
            ax.set_xlabel("azimuth (°)")
            ax.set_ylabel("polar angle from z (°)")
            fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path
