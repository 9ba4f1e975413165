"""Compile a :class:`~regnn_ff.RelaxedPotential` with TorchScript and save/load it with its metadata.

The saved file carries ``regnn_ff.json`` (species, r_max, dtype, units, field irreps, l_relaxed,
the model config, library versions, the training data's range and a checksum), so a host that has
only ``torch.jit.load`` knows how to feed it. Files are written atomically: a crash never leaves a
half-written model. Loading checks the metadata against the checksum written at export and against
the compiled module itself, so an edited file (species swapped, r_max changed) is refused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import e3nn
import torch
from e3nn import o3

from ..atomic import atomic_path
from ..nn.potential import RelaxedPotential
from ..validate import torch_device

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


def metadata(model: RelaxedPotential, data_range: Optional[Dict[str, Any]] = None,
             symmetry: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What a host needs to know to use the compiled model, and where it came from.

    ``data_range`` is what the model saw in training (see :func:`regnn_ff.validate.data_range`);
    adapters warn when an input goes beyond it. ``symmetry``: the point group θ was projected onto
    (``regnn symmetrize``), with its axes and the table it was chosen from.
    """
    from .. import __version__

    config = model.config
    return {
        "format_version": FORMAT_VERSION,
        "species": list(config.species),
        "r_max": config.r_max,
        "dtype": str(model.dtype).replace("torch.", ""),
        "units": {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "dipole": "e·Å",
                  "electric_field": "V/Å", "magnetic_field": "T"},
        "field_irreps": config.field_irreps,
        "l_relaxed": config.l_relaxed,
        "relaxed_irreps": model.relaxed_irreps(),
        "config": config.to_dict(),
        "versions": {"regnn_ff": __version__, "torch": torch.__version__, "e3nn": e3nn.__version__},
        "data_range": data_range,
        "symmetry": symmetry,
    }


def checksum(meta: Dict[str, Any], module: torch.nn.Module) -> str:
    """SHA-256 of the metadata (without its ``checksum`` entry) and every tensor of ``module``."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tensor.numel()};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_scripted(model: RelaxedPotential, path: Union[str, Path], data_range: Optional[Dict[str, Any]] = None,
                  symmetry: Optional[Dict[str, Any]] = None) -> Path:
    """Compile ``model`` and write it to ``path`` atomically (temp file + rename); returns the path.

    ``data_range``: the training data's range (a checkpoint's ``data_range``), stored for warnings;
    ``symmetry``: see :func:`metadata`.
    """
    scripted = compile_model(model)
    meta = metadata(model, data_range, symmetry)
    meta["checksum"] = checksum(meta, scripted)
    return write_scripted(scripted, meta, path)


def write_scripted(scripted: torch.jit.ScriptModule, meta: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write a compiled module with ``meta`` as its metadata file, atomically (temp file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp, torchscript_on_purpose():
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta, indent=1)})
    return path


def export_checkpoint(checkpoint: Union[str, Path], path: Union[str, Path], dtype: Optional[str] = None,
                      symmetrize: Optional[str] = None, domain: bool = False) -> Path:
    """``regnn export``: compile the model of a training checkpoint (EMA weights) to ``path``, in its
    training precision or ``dtype``, with the training data's range in the metadata.

    ``symmetrize``: ``"auto"`` or a group name: θ is first projected onto that group (see
    :mod:`regnn_ff.analysis.symmetrize`), in the exported precision, so the file is invariant under
    the group to that precision's rounding. ``domain``: write the entry point for spatially
    decomposed engines (local + ghost atoms; :mod:`regnn_ff.export.lammps`) instead.
    """
    from ..train.checkpoint import load_checkpoint, model_from_state

    state = load_checkpoint(checkpoint)
    model = model_from_state(state, checkpoint)
    if dtype:
        model = model.to(getattr(torch, dtype))
    symmetry = state.get("symmetry")
    if symmetrize:
        from ..analysis.symmetrize import apply_selection, choose_group

        if model.config.l_relaxed is None:
            raise ValueError(f"{checkpoint}: --symmetrize needs relaxed weights θ (l_relaxed is null): the model is O(3)-equivariant already")
        selection = choose_group(state, model, symmetrize)
        apply_selection(model, selection)
        symmetry = selection.to_dict()
    if domain:
        from .lammps import save_domain_model

        return save_domain_model(model, path, state.get("data_range"), symmetry)
    return save_scripted(model, path, state.get("data_range"), symmetry)


def load_scripted(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a file written by :func:`save_scripted`; returns ``(module, metadata)``.

    A missing file, a file that is not TorchScript, a TorchScript file that is not a regnn-ff model,
    unreadable metadata, or metadata that disagrees with the checksum or with the module gives a
    one-line error naming the file.
    """
    path = Path(path)
    device = torch_device(device)
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
    try:
        meta = json.loads(extra[METADATA_FILE])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: its {METADATA_FILE} is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its {METADATA_FILE} is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: regnn-ff model format {meta.get('format_version')} is not supported by this "
            f"version (expects {FORMAT_VERSION})"
        )
    check_metadata(module, meta, path)
    return module, meta


def _attribute(module: torch.nn.Module, name: str) -> Any:
    try:
        return getattr(module, name)
    except AttributeError:  # a model class without this attribute: nothing to compare
        return None


def check_metadata(module: torch.nn.Module, meta: Dict[str, Any], path: Union[str, Path]) -> None:
    """Refuse metadata that disagrees with the checksum written at export, or with the module itself
    (species, r_max, field size, dtype): a host would feed the model wrong species indices or cutoffs."""
    for key in ("species", "r_max", "dtype"):
        if key not in meta:
            raise ValueError(f"{path}: its {METADATA_FILE} has no '{key}' entry")
    if "checksum" in meta and meta["checksum"] != checksum(meta, module):
        raise ValueError(f"{path}: metadata or weights differ from the checksum written at export "
                         "(the file was edited or corrupted); export it again")
    species = _attribute(module, "species_names")
    if species is not None and list(species) != list(meta["species"]):
        raise ValueError(f"{path}: metadata species {meta['species']} differ from the model's own {list(species)}")
    r_max = _attribute(module, "r_max")
    if r_max is not None and float(r_max) != float(meta["r_max"]):
        raise ValueError(f"{path}: metadata r_max {meta['r_max']} Å differs from the model's own {r_max} Å")
    declared = meta.get("field_irreps")
    try:
        declared_dim = o3.Irreps(declared).dim if declared else 0
    except (ValueError, AssertionError, TypeError):
        raise ValueError(f"{path}: metadata field_irreps {declared!r} is not an irreps string") from None
    field_dim = _attribute(module, "field_dim")
    if field_dim is not None and int(field_dim) != declared_dim:
        raise ValueError(f"{path}: metadata field_irreps {declared!r} do not fit the model's field input of size {field_dim}")
    floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
    if floats and str(floats[0]).replace("torch.", "") != meta["dtype"]:
        raise ValueError(f"{path}: metadata dtype {meta['dtype']} differs from the model's weights ({floats[0]})")
