"""``regnn symmetrize``: a model whose θ lies exactly in one point group's invariant subspace.

The group is chosen by :func:`~regnn_ff.analysis.selection.select_group` (``"auto"``) or named.
The model is then exactly invariant (energy) and equivariant (forces, dipole) under every element
of that group, to rounding, and the group, its axes and the table it was chosen from go with it:
into the checkpoint's ``symmetry`` entry and the exported model's metadata (``regnn info``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from ..nn.potential import RelaxedPotential
from .groups import candidate
from .selection import Selection, checkpoint_data, project_model_, projector_of, select_group, validation_frames

#: Epochs of fine-tuning for groups a bare projection narrowly misses (see :mod:`.selection`).
FINETUNE_EPOCHS = 5


def choose_group(state: Dict[str, Any], model: RelaxedPotential, group: str = "auto",
                 data: Optional[str] = None, finetune_epochs: int = FINETUNE_EPOCHS) -> Selection:
    """The group for ``model`` (the model of checkpoint ``state``): chosen by validation loss on the
    checkpoint's validation split (or ``data``) for ``"auto"``, or the named group; near misses are
    fine-tuned on the run's training split."""
    groups = None if group == "auto" else [candidate(group).name]
    missing = None
    if "train_config" in state:
        try:
            cache, properties, weights, finetune = checkpoint_data(state, model, data, finetune_epochs)
            return select_group(model, cache, properties, weights, groups=groups, finetune=finetune)
        except OSError as err:  # the run's data moved: judge θ alone, and say so
            if data is not None:
                raise
            missing = str(err)
    elif data is not None:
        return select_group(model, *validation_frames(state, model, data), groups=groups)
    selection = select_group(model, groups=groups)
    if missing:
        selection.criterion += f"; the run's validation data could not be read ({missing}): give --data"
    return selection


def apply_selection(model: RelaxedPotential, selection: Selection) -> None:
    """Put the selection's weights into ``model``: the fine-tuned ones where the group needed them,
    else θ projected (in the model's own precision, so it is invariant to that rounding)."""
    if selection.state is not None:
        model.load_state_dict({k: v.to(model.dtype) if v.is_floating_point() else v for k, v in selection.state.items()})
    project_model_(model, projector_of(model), candidate(selection.group), selection.projection.frame)


def _project_state(state_dict: Dict[str, torch.Tensor], model: RelaxedPotential, selection: Selection) -> None:
    """Project the θ entries of a state dict (e.g. the live weights beside the EMA) in the selection's frame."""
    names = [f"representation.layers.{k}.source.theta" for k in range(len(model.layers))]
    thetas = np.stack([state_dict[n].double().numpy() for n in names])
    projected = projector_of(model).project(candidate(selection.group), selection.projection.frame, thetas)
    for name, theta in zip(names, projected):
        state_dict[name] = torch.as_tensor(np.asarray(theta)).to(state_dict[name].dtype)


def symmetrize_checkpoint(checkpoint: Union[str, Path], output: Union[str, Path], group: str = "auto",
                          data: Optional[str] = None, finetune_epochs: int = FINETUNE_EPOCHS) -> Selection:
    """Write ``output``: the checkpoint with θ (live and EMA weights) projected onto the group (the
    fine-tuned weights where the group needed fine-tuning)."""
    from ..train.checkpoint import load_checkpoint, model_from_state, save_checkpoint

    state = load_checkpoint(checkpoint)
    model = model_from_state(state, checkpoint)
    if model.config.l_relaxed is None:
        raise ValueError(f"{checkpoint}: the model has no relaxed weights θ (l_relaxed is null): it is O(3)-equivariant already")
    selection = choose_group(state, model, group, data, finetune_epochs)
    for key in ("model_state", "ema_state"):
        if state.get(key):
            if selection.state is not None:  # fine-tuned with θ in the group: those weights, for both
                state[key] = {k: v.clone() for k, v in selection.state.items()}
            _project_state(state[key], model, selection)
    state["symmetry"] = selection.to_dict()
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, output)
    return selection
