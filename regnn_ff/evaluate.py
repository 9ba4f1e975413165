"""``regnn evaluate``: error metrics of a checkpoint or an exported model on a labelled data file."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import torch
from e3nn import o3

from .data.datasets import KeyMap, check_species, read_frames
from .train.batches import GraphCache
from .train.metrics import error_metrics


def load_any_model(path: Union[str, Path]):
    """``(callable model, species, r_max, field_irreps, dtype)`` from a ``.ckpt`` or an exported ``.pt``."""
    from .export import load_scripted
    from .train.checkpoint import model_from_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix == ".ckpt":
        model = model_from_checkpoint(path)
        c = model.config
        return model, c.species, c.r_max, c.field_irreps, model.embedding.dtype
    module, meta = load_scripted(path)
    return module, meta["species"], meta["r_max"], meta["field_irreps"], getattr(torch, meta["dtype"])


def evaluate(model_path: Union[str, Path], data_path: Union[str, Path], keys: Optional[Dict[str, str]] = None,
             batch_size: int = 16) -> Dict[str, float]:
    """MAE/RMSE (meV/atom, meV/Å, meV/Å³, e·mÅ) of the model on every labelled frame of ``data_path``."""
    model, species, r_max, field_irreps, dtype = load_any_model(model_path)
    field_irreps = o3.Irreps(field_irreps) if field_irreps else None
    frames = read_frames(data_path, KeyMap.from_dict(keys), field_irreps.dim if field_irreps else 0)
    check_species(frames, species)
    properties = ["energy", "forces"]
    if any("stress" in f.labels for f in frames):
        properties.append("stress")
    if field_irreps is not None and any(ir == o3.Irrep("1o") for _, ir in field_irreps):
        properties.append("dipole")
    return error_metrics(model, GraphCache(frames, species, r_max, dtype), properties, batch_size)
