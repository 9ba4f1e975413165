"""Error metrics (MAE, RMSE) of a model on labelled frames, and the summary table."""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Union

import numpy as np
import torch

from .batches import GraphCache

#: (label, unit shown, factor from the model's unit)
UNITS = {
    "energy": ("energy", "meV/atom", 1e3),
    "forces": ("forces", "meV/Å", 1e3),
    "stress": ("stress", "meV/Å³", 1e3),
    "dipole": ("dipole", "e·mÅ", 1e3),
}


def error_metrics(model: Callable, cache: GraphCache, properties: Sequence[str], batch_size: int = 16,
                  device: Union[str, torch.device] = "cpu") -> Dict[str, float]:
    """``{energy_mae, energy_rmse, forces_mae, ...}`` in the units of :data:`UNITS` over labelled frames.

    ``model`` is anything called as ``model(graph, properties)``: an eager RelaxedPotential or a
    TorchScript model loaded from disk.
    """
    errors: Dict[str, List[np.ndarray]] = {name: [] for name in UNITS}
    for start in range(0, len(cache), batch_size):
        batch = cache.batch(range(start, min(start + batch_size, len(cache))), device)
        out = model(batch, list(properties))
        batch = {k: v.cpu() for k, v in batch.items()}
        out = {k: v.detach().cpu() for k, v in out.items()}
        n = batch["num_atoms"].double().numpy()
        if "energy" in out:
            mask = batch["has_energy"].numpy()
            diff = (out["energy"].detach().double().numpy() - batch["ref_energy"].double().numpy()) / n
            errors["energy"].append(diff[mask])
        for name in ("forces", "stress", "dipole"):
            if name in out:
                mask = batch[f"has_{name}"].numpy()
                diff = out[name].detach().double().numpy() - batch[f"ref_{name}"].double().numpy()
                errors[name].append(diff[mask].ravel())
    metrics: Dict[str, float] = {}
    for name, chunks in errors.items():
        values = np.concatenate(chunks) if chunks else np.zeros(0)
        if values.size:
            factor = UNITS[name][2]
            metrics[f"{name}_mae"] = float(np.abs(values).mean() * factor)
            metrics[f"{name}_rmse"] = float(np.sqrt((values**2).mean()) * factor)
    return metrics


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """One row per (split, property), MAE and RMSE columns."""
    lines = [f"{'split':<8}{'property':<10}{'unit':<10}{'MAE':>12}{'RMSE':>12}"]
    for split, metrics in results.items():
        for name, (label, unit, _) in UNITS.items():
            if f"{name}_mae" in metrics:
                lines.append(f"{split:<8}{label:<10}{unit:<10}{metrics[name + '_mae']:>12.3f}{metrics[name + '_rmse']:>12.3f}")
    return "\n".join(lines)

