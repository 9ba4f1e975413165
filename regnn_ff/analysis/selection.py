"""Which symmetry the data broke, chosen as a model: the most symmetric group whose projected θ
predicts held-out data as well as the unconstrained θ.

For every candidate group (:mod:`regnn_ff.analysis.groups`) θ is projected onto the group's
invariant subspace (its frame fitted to θ) and the model is evaluated on validation frames. The
per-frame losses of the projected and the unconstrained model are compared pairwise:

    Δ = mean_i (L_G,i − L_i),   SE = std_i(L_G,i − L_i) / sqrt(n)

and G is accepted when Δ ≤ z·SE + rel_tol·mean_i L_i: the loss does not rise by more than its
sampling noise (a one-sided paired test at z standard errors) plus a margin of practical
equivalence. The most symmetric accepted group (smallest invariant subspace) is chosen.

Without labelled frames only θ can be judged: G is accepted when every block of θ lies within
``block_tol`` (relative to that block's own norm) of the group's invariant subspace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..data import keys
from ..nn.potential import RelaxedPotential
from .groups import CANDIDATES, GroupProjector, Projection, candidate

#: Default test: z standard errors of the paired loss difference, plus a relative margin.
Z_SCORE = 2.0
REL_TOL = 0.02
BLOCK_TOL = 0.05


def frame_losses(model: torch.nn.Module, cache, properties: Sequence[str], weights) -> np.ndarray:
    """The training loss of each frame (energy per atom, forces, stress, dipole; squared errors
    weighted as in ``weights``, a :class:`~regnn_ff.train.config.LossConfig`), float64 [frames]."""
    losses: List[np.ndarray] = []
    for start in range(0, len(cache), 16):
        batch = cache.batch(range(start, min(start + 16, len(cache))))
        with torch.no_grad() if "forces" not in properties else torch.enable_grad():
            out = model(batch, list(properties))
        n = batch["num_atoms"].double()
        loss = torch.zeros(n.numel(), dtype=torch.float64)
        if "energy" in out:
            error = (out["energy"].detach().double() - batch["ref_energy"].double()) / n
            loss += weights.energy * error.pow(2) * batch["has_energy"]
        if "forces" in out:
            squares = (out["forces"].detach().double() - batch["ref_forces"].double()).pow(2).sum(1) * batch["has_forces"]
            per_frame = torch.zeros_like(loss).index_add(0, batch[keys.BATCH], squares)
            loss += weights.forces * per_frame / (3 * n)
        for name in ("stress", "dipole"):
            if name in out and getattr(weights, name) > 0:
                squares = (out[name].detach().double() - batch[f"ref_{name}"].double()).pow(2)
                loss += getattr(weights, name) * squares.reshape(n.numel(), -1).mean(1) * batch[f"has_{name}"]
        losses.append(loss.numpy())
    return np.concatenate(losses)


@dataclass
class GroupRow:
    """One line of the selection table (losses in the training loss's units)."""

    group: str
    axis: Optional[List[float]]
    invariant_dim: int
    max_block_residual: float
    val_loss: Optional[float] = None
    delta: Optional[float] = None
    stderr: Optional[float] = None
    accepted: bool = False


@dataclass
class Selection:
    """The chosen group, its projection, and the table it was chosen from."""

    group: str
    projection: Projection
    rows: List[GroupRow]
    criterion: str

    def to_dict(self) -> Dict[str, Any]:
        frame = self.projection.frame
        return {"group": self.group, "axis": self.projection.axis,
                "frame": None if frame is None else frame.tolist(), "criterion": self.criterion,
                "table": [asdict(r) for r in self.rows]}


def select_group(model: RelaxedPotential, cache=None, properties: Sequence[str] = ("energy", "forces"), weights=None,
                 z: float = Z_SCORE, rel_tol: float = REL_TOL, block_tol: float = BLOCK_TOL,
                 groups: Optional[Sequence[str]] = None) -> Selection:
    """Choose θ's group for ``model``: by validation loss when ``cache`` (labelled frames, a
    :class:`~regnn_ff.train.batches.GraphCache`) is given, else by θ alone (``block_tol``).

    ``weights``: the loss weights (a LossConfig; default energy 1, forces 10). ``groups`` restricts
    the candidates (names as in :data:`~regnn_ff.analysis.groups.GROUP_NAMES`); a single group is
    taken whatever its row says (its Δ loss is still reported).
    """
    from ..train.config import LossConfig

    if model.config.l_relaxed is None:
        raise ValueError("the model has no relaxed weights θ (l_relaxed is null): it is O(3)-equivariant already")
    weights = weights or LossConfig()
    thetas = [t.detach().double().numpy() for t in model.relaxed_weights()]
    projector = GroupProjector(model.relaxed_irreps(), thetas)
    candidates = [candidate(g) for g in groups] if groups else CANDIDATES
    base = frame_losses(model, cache, properties, weights) if cache is not None else None
    rows, projections = [], []
    for group in candidates:
        projection = projector.fit(group)
        row = GroupRow(group.name, projection.axis, projection.invariant_dim, max(projection.block_residuals.values()))
        if base is not None:
            losses = _losses_with(model, projection.thetas, cache, properties, weights)
            diff = losses - base
            row.val_loss = float(losses.mean())
            row.delta = float(diff.mean())
            row.stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            row.accepted = row.delta <= z * row.stderr + rel_tol * float(base.mean())
        else:
            row.accepted = row.max_block_residual <= block_tol
        rows.append(row)
        projections.append(projection)
    accepted = [k for k, row in enumerate(rows) if row.accepted]
    if groups is not None and len(groups) == 1:
        accepted = [0]  # the user's choice: projected whatever the table says
    if not accepted:
        raise ValueError(f"none of the groups {[r.group for r in rows]} fits θ within the tolerance")
    best = min(accepted, key=lambda k: (rows[k].invariant_dim, k))
    if base is not None:
        criterion = (f"validation loss of {len(base)} frames: Δ ≤ {z:g}·SE + {rel_tol:g}·loss "
                     f"(unconstrained loss {float(base.mean()):.4g})")
    else:
        criterion = f"θ only (no labelled frames): every block within {block_tol:g} of the group's subspace"
    return Selection(rows[best].group, projections[best], rows, criterion)


def _losses_with(model: RelaxedPotential, thetas: Sequence[np.ndarray], cache, properties, weights) -> np.ndarray:
    kept = [t.detach().clone() for t in model.relaxed_weights()]
    try:
        model.set_relaxed_weights([torch.as_tensor(t) for t in thetas])
        return frame_losses(model, cache, properties, weights)
    finally:
        model.set_relaxed_weights(kept)


def format_table(selection: Selection) -> str:
    """The selection table as text: group, axis, Δ loss ± SE, accepted."""
    lines = [f"{'group':<7}{'dim':>4}  {'axis':<26}{'θ residual':>11}{'val loss':>12}{'Δ':>12}{'SE':>11}  ok"]
    for r in selection.rows:
        axis = "" if r.axis is None else "(" + ", ".join(f"{x:+.3f}" for x in r.axis) + ")"
        loss = "" if r.val_loss is None else f"{r.val_loss:12.4g}{r.delta:12.3g}{r.stderr:11.2g}"
        mark = "*" if r.group == selection.group else ("yes" if r.accepted else "")
        lines.append(f"{r.group:<7}{r.invariant_dim:>4}  {axis:<26}{r.max_block_residual:>11.2g}{loss:<35}  {mark}")
    return "\n".join(lines)


def validation_frames(checkpoint_state: Dict[str, Any], model: RelaxedPotential, data: Optional[str] = None):
    """(labelled frames as a GraphCache, properties, loss weights) for a checkpoint's model: its own
    validation split (rebuilt from the training config stored in the checkpoint), or the file ``data``."""
    from ..data.datasets import KeyMap, check_species, read_frames
    from ..train.batches import GraphCache
    from ..train.config import TrainConfig
    from ..train.loss import properties_for
    from ..train.trainer import _load_splits

    config = TrainConfig.from_dict(checkpoint_state["train_config"], "checkpoint: train_config")
    field_dim = model.field_dim
    if data is not None:
        frames = read_frames(data, KeyMap.from_dict(config.data.keys, "data.keys"), field_dim)
    else:
        frames = _load_splits(config, field_dim)[1]
    check_species(frames, model.species_names)
    cache = GraphCache(frames, model.species_names, model.config.r_max, model.dtype)
    properties = properties_for(config.loss, model.dipole_start >= 0, any(f.atoms.pbc.any() for f in frames))
    return cache, properties, config.loss
