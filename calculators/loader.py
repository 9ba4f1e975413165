"""One model loader for every adapter: an exported ``.pt``, a training ``.ckpt``, or a model object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from e3nn import o3

from regnn_ff.export import compile_model, load_scripted
from regnn_ff.export.torchscript import metadata as model_metadata
from regnn_ff.nn.potential import RelaxedPotential


@dataclass
class LoadedModel:
    """A model ready for an MD engine: ``module(graph, properties)`` plus what the engine must know."""

    module: torch.nn.Module
    metadata: Dict[str, Any]
    device: torch.device

    @property
    def species(self) -> List[str]:
        return list(self.metadata["species"])

    @property
    def r_max(self) -> float:
        return float(self.metadata["r_max"])

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.metadata["dtype"])

    @property
    def field_irreps(self) -> o3.Irreps:
        return o3.Irreps(self.metadata.get("field_irreps") or "")

    @property
    def field_dim(self) -> int:
        return self.field_irreps.dim

    @property
    def has_dipole(self) -> bool:
        """The dipole is −dE/d(first 1o block of the field)."""
        return any(ir == o3.Irrep("1o") for _, ir in self.field_irreps)


def load_model(model: Union[str, Path, RelaxedPotential], device: Union[str, torch.device] = "cpu",
               dtype: Optional[str] = None) -> LoadedModel:
    """Load an exported TorchScript file, compile a training checkpoint, or wrap a model object.

    ``dtype`` ("float32"/"float64") applies to checkpoints and model objects; an exported file keeps
    the precision it was exported with (re-export to change it).
    """
    device = torch.device(device)
    if isinstance(model, RelaxedPotential):
        if dtype:
            model = model.to(getattr(torch, dtype))
        return LoadedModel(compile_model(model.to(device)), model_metadata(model), device)
    path = Path(model)
    if path.suffix == ".ckpt":
        from regnn_ff.train.checkpoint import model_from_checkpoint

        return load_model(model_from_checkpoint(path), device, dtype)
    module, meta = load_scripted(path, device)
    if dtype and dtype != meta["dtype"]:
        raise ValueError(f"{path} was exported in {meta['dtype']}; export it again with --dtype {dtype}")
    return LoadedModel(module, meta, device)
