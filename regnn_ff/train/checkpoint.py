"""Checkpoints: state dicts + configs + versions (never pickled modules), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import torch

from ..atomic import atomic_path
from ..nn.config import ModelConfig
from ..nn.potential import RelaxedPotential

FORMAT = "regnn-ff-checkpoint"
# 2: many-body product in every block and a readout of every block (regnn-ff 0.2). A version-1
# checkpoint holds weights of a different architecture, so it is refused by name, not half-loaded.
VERSION = 2


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> None:
    """Write ``state`` to ``path`` via a temporary file and a rename: a crash leaves the old file intact."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign files
        raise ValueError(f"{path}: not a regnn-ff checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a regnn-ff checkpoint")
    if state.get("version") != VERSION:
        hint = " (written by regnn-ff 0.1, an earlier architecture: retrain, or use regnn-ff 0.1)" if state.get("version") == 1 else ""
        raise ValueError(f"{path}: checkpoint version {state.get('version')} is not supported (expects {VERSION}){hint}")
    return state


def stored_model_config(state: Dict[str, Any], path: Union[str, Path]) -> ModelConfig:
    """The model config a checkpoint was trained with; errors name ``path``."""
    if "model_config" not in state:
        raise ValueError(f"{path}: checkpoint has no 'model_config'")
    stored = dict(state["model_config"])
    # Written before the last block had a cutoff of its own: it used r_max, as every block did.
    stored.setdefault("last_r_max", stored.get("r_max"))
    return ModelConfig.from_dict(stored, f"{path}: model_config")


def model_from_checkpoint(path: Union[str, Path], use_ema: bool = True) -> RelaxedPotential:
    """The model stored in a checkpoint (EMA weights when present), in its training dtype, eval mode."""
    return model_from_state(load_checkpoint(path), path, use_ema)


def model_from_state(state: Dict[str, Any], path: Union[str, Path], use_ema: bool = True) -> RelaxedPotential:
    """The model in a checkpoint already read by :func:`load_checkpoint` (``path`` names it in errors)."""
    config = stored_model_config(state, path)
    if "model_state" not in state:
        raise ValueError(f"{path}: checkpoint has no 'model_state'")
    model = RelaxedPotential(config)
    weights = state["ema_state"] if use_ema and state.get("ema_state") else state["model_state"]
    dtype = getattr(torch, state.get("dtype", "float32"))
    model = model.to(dtype)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # torch lists every mismatched tensor over many lines
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{path}: the stored weights do not fit its model_config ({first})") from None
    return model.eval()
