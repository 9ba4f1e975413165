"""Statistics fitted from the training set before training: reference energies, scale, neighbours."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.datasets import Frame


def reference_energies(frames: Sequence[Frame], species: Sequence[str]) -> np.ndarray:
    """Per-species energies E0 (eV) by least squares: E ≈ Σ_s n_s E0_s over frames with an energy.

    Species absent from the energies get 0. Uses the minimum-norm solution when the composition
    matrix is rank deficient (e.g. one molecule type only), so E0 is always defined.
    """
    index = {s: i for i, s in enumerate(species)}
    rows, energies = [], []
    for frame in frames:
        if "energy" in frame.labels:
            counts = np.zeros(len(species))
            for symbol in frame.atoms.get_chemical_symbols():
                counts[index[symbol]] += 1
            rows.append(counts)
            energies.append(float(frame.labels["energy"]))
    if not rows:
        return np.zeros(len(species))
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(energies), rcond=None)
    return solution


def force_rms(frames: Sequence[Frame]) -> float:
    """Root mean square of force components (eV/Å); 1.0 when there are no forces."""
    forces = [frame.labels["forces"].ravel() for frame in frames if "forces" in frame.labels]
    if not forces:
        return 1.0
    value = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    return value if value > 1e-8 else 1.0


def mean_neighbours(num_edges: Sequence[int], num_atoms: Sequence[int]) -> float:
    """Average number of neighbours per atom (at least 1), used to normalise summed messages."""
    return max(float(sum(num_edges)) / max(float(sum(num_atoms)), 1.0), 1.0)
