"""``regnn evaluate``: error metrics of a checkpoint or an exported model on a labelled data file."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

from .data.datasets import KeyMap, check_species, read_frames
from .export.load import load_model
from .train.batches import GraphCache
from .train.metrics import error_metrics
from .validate import warn_field_beyond_training, warn_ignored_inputs, warn_labels_beyond_training


def evaluate(model_path: Union[str, Path], data_path: Union[str, Path], keys: Optional[Dict[str, str]] = None,
             batch_size: int = 16) -> Dict[str, float]:
    """MAE/RMSE (meV/atom, meV/Å, meV/Å³, e·mÅ) of the model on every labelled frame of ``data_path``.

    Warns (:class:`~regnn_ff.validate.ExtrapolationWarning`) when the data's fields or labels lie far
    outside the training data's (e.g. labels in kcal/mol under eV keys), or when the data carries a
    field or dipoles the model cannot use.
    """
    loaded = load_model(model_path)
    key_map = KeyMap.from_dict(keys, "--key")
    frames = read_frames(data_path, key_map, loaded.field_dim)
    check_species(frames, loaded.species)
    warn_ignored_inputs(frames, key_map.field, loaded.field_dim, loaded.has_dipole, str(data_path))
    warn_labels_beyond_training(frames, loaded.data_range, str(data_path))
    if loaded.field_dim:
        fields = [f.field for f in frames if f.field is not None]
        if fields:
            warn_field_beyond_training(fields, loaded.data_range, loaded.field_unit, f"{data_path}: field")
    properties = ["energy", "forces"]
    if any("stress" in f.labels for f in frames):
        properties.append("stress")
    if loaded.has_dipole:
        properties.append("dipole")
    return error_metrics(loaded.callable, GraphCache(frames, loaded.species, loaded.r_max, loaded.dtype), properties,
                         batch_size)
