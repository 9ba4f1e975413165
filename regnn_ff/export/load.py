"""One model loader for every user of a model: the adapters (ASE, OpenMM, openmm-ml), ``evaluate``,
``analyze`` and ``regnn info``.

It takes an exported ``.pt`` (checked against its checksum and its own module), a training ``.ckpt``,
a model object, or an already loaded model, and names the file in every error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from e3nn import o3

from ..nn.potential import RelaxedPotential
from ..validate import torch_device
from .torchscript import compile_model, load_scripted
from .torchscript import metadata as model_metadata

DTYPES = {"float32": "float32", "float64": "float64", "single": "float32", "double": "float64"}

Source = Union[str, Path, RelaxedPotential, "LoadedModel"]


class LoadedModel:
    """A model ready for use: ``module(graph, properties)`` plus what a host must know to feed it.

    ``module`` is the TorchScript module (compiled on first use for checkpoints and model objects);
    ``eager`` is the model object for checkpoints and model objects (None for exported files).
    Pickling stores where the model came from and loads it again (a TorchScript module itself
    cannot be pickled), so ``ase.Atoms`` with the calculator attached can be pickled.
    """

    def __init__(self, metadata: Dict[str, Any], device: torch.device, source: Any,
                 module: Optional[torch.nn.Module] = None, eager: Optional[RelaxedPotential] = None):
        self.metadata = metadata
        self.device = device
        self.source = source
        self.eager = eager
        self._module = module

    def __reduce__(self):
        return load_model, (self.source, str(self.device), self.metadata["dtype"])

    @property
    def module(self) -> torch.nn.Module:
        if self._module is None:
            self._module = compile_model(self.eager)
        return self._module

    @property
    def callable(self) -> torch.nn.Module:
        """The eager model where there is one (no compile time), else the TorchScript module."""
        return self.eager if self.eager is not None else self.module

    @property
    def name(self) -> str:
        """How errors and warnings refer to this model."""
        return str(self.source) if isinstance(self.source, (str, Path)) else "the model"

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
    def field_unit(self) -> str:
        """Unit of the field input: V/Å for an E field, T for a B field, else the model's units."""
        if self.field_irreps == o3.Irreps("1x1o"):
            return "V/Å"
        if self.field_irreps == o3.Irreps("1x1e"):
            return "T"
        return f"(model units, {self.field_irreps})"

    @property
    def has_dipole(self) -> bool:
        """The dipole is −dE/d(first 1o block of the field)."""
        return any(ir == o3.Irrep("1o") for _, ir in self.field_irreps)

    @property
    def data_range(self) -> Optional[Dict[str, Any]]:
        """The training data's range (field, energies, forces), where the file records it."""
        return self.metadata.get("data_range")


def _dtype_name(dtype: Optional[str]) -> Optional[str]:
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise ValueError(f"precision {dtype!r} is not one of {sorted(DTYPES)}")
    return DTYPES[name]


def load_model(model: Source, device: Union[str, torch.device] = "cpu", dtype: Optional[str] = None) -> LoadedModel:
    """Load an exported TorchScript file, a training checkpoint, or wrap a model object.

    Args:
        model: a ``.pt`` written by ``regnn export``, a ``.ckpt`` from training, a RelaxedPotential,
            or a LoadedModel (returned as is when device and dtype already match).
        device: 'cpu' or 'cuda[:N]'; a device this machine lacks is a one-line error.
        dtype: 'float32'/'float64' (or openmm-ml's 'single'/'double'); None keeps the model's own.
            A file exported in another precision is converted (its weights keep their rounding).
    """
    device = torch_device(device)
    dtype = _dtype_name(dtype)
    if isinstance(model, LoadedModel):
        if model.device == device and dtype in (None, model.metadata["dtype"]):
            return model
        model = model.source
    if isinstance(model, RelaxedPotential):
        if dtype:
            model = model.to(getattr(torch, dtype))
        model = model.to(device).eval()
        return LoadedModel(model_metadata(model), device, model, eager=model)
    if not isinstance(model, (str, Path)):
        raise TypeError(f"model must be a file path or a RelaxedPotential, got {type(model).__name__}")
    path = Path(model).expanduser().absolute()  # absolute: a pickled calculator reloads from anywhere
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a model file (.pt or .ckpt)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix == ".ckpt":
        return _load_checkpoint(path, device, dtype)
    module, meta = load_scripted(path, device)
    if dtype and dtype != meta["dtype"]:
        module = module.to(getattr(torch, dtype))
        meta = dict(meta, dtype=dtype, converted_from=meta["dtype"])
    return LoadedModel(meta, device, path, module=module)


def _load_checkpoint(path: Path, device: torch.device, dtype: Optional[str]) -> LoadedModel:
    from ..train.checkpoint import load_checkpoint, model_from_state

    state = load_checkpoint(path)
    model = model_from_state(state, path)
    if dtype:
        model = model.to(getattr(torch, dtype))
    model = model.to(device).eval()
    meta = model_metadata(model, state.get("data_range"), state.get("symmetry"))
    meta["checkpoint"] = {"epoch": state.get("epoch"), "best_val": state.get("best_val")}
    return LoadedModel(meta, device, path, eager=model)
