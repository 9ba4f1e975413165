"""Compile a :class:`~regnn_ff.RelaxedPotential` with TorchScript and save/load it with its metadata.

The saved file carries ``regnn_ff.json`` (species, r_max, dtype, units, field irreps, l_relaxed,
the model config and library versions), so a host that has only ``torch.jit.load`` knows how to
feed it. Files are written atomically: a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import e3nn
import torch

from ..atomic import atomic_path
from ..nn.potential import RelaxedPotential

METADATA_FILE = "regnn_ff.json"
FORMAT_VERSION = 1


@contextmanager
def torchscript_on_purpose():
    # TorchScript is what openmm-torch's TorchForce and C++ hosts load; PyTorch now flags every
    # jit call as deprecated, which tells our users nothing they can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


def compile_model(model: RelaxedPotential) -> torch.jit.ScriptModule:
    """TorchScript-compile ``model`` (in eval mode); its ``forward(graph, properties)`` is kept."""
    with torchscript_on_purpose():
        return torch.jit.script(model.eval())


def metadata(model: RelaxedPotential) -> Dict[str, Any]:
    """What a host needs to know to use the compiled model, and where it came from."""
    from .. import __version__

    config = model.config
    return {
        "format_version": FORMAT_VERSION,
        "species": list(config.species),
        "r_max": config.r_max,
        "dtype": str(model.embedding.dtype).replace("torch.", ""),
        "units": {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "dipole": "e·Å",
                  "electric_field": "V/Å", "magnetic_field": "T"},
        "field_irreps": config.field_irreps,
        "l_relaxed": config.l_relaxed,
        "relaxed_irreps": model.relaxed_irreps(),
        "config": config.to_dict(),
        "versions": {"regnn_ff": __version__, "torch": torch.__version__, "e3nn": e3nn.__version__},
    }


def save_scripted(model: RelaxedPotential, path: Union[str, Path]) -> Path:
    """Compile ``model`` and write it to ``path`` atomically (temp file + rename); returns the path."""
    path = Path(path)
    scripted = compile_model(model)
    extra = {METADATA_FILE: json.dumps(metadata(model), indent=1)}
    with atomic_path(path) as tmp, torchscript_on_purpose():
        torch.jit.save(scripted, str(tmp), _extra_files=extra)
    return path


def load_scripted(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a file written by :func:`save_scripted`; returns ``(module, metadata)``.

    A missing file, a file that is not TorchScript, or a TorchScript file that is not a regnn-ff
    model gives a one-line error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    extra = {METADATA_FILE: ""}
    try:
        with torchscript_on_purpose():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a TorchScript model file ({first})") from None
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path}: a TorchScript file, but not a regnn-ff model (no {METADATA_FILE} inside)")
    meta = json.loads(extra[METADATA_FILE])
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: regnn-ff model format {meta.get('format_version')} is not supported by this "
            f"version (expects {FORMAT_VERSION})"
        )
    return module, meta
