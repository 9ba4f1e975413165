"""Which symmetry the data broke, chosen as a model: the most symmetric group whose projected θ
predicts held-out data as well as the unconstrained θ.

For every candidate group (:mod:`regnn_ff.analysis.groups`) θ is projected onto the group's
invariant subspace (its frame fitted to θ) and the model is evaluated on validation frames. The
per-frame losses of the projected and the unconstrained model are compared pairwise:

    Δ = mean_i (L_G,i − L_i),   SE = std_i(L_G,i − L_i) / sqrt(n)

and G is accepted when Δ ≤ z·SE + rel_tol·mean_i L_i: the loss does not rise by more than its
sampling noise (a one-sided paired test at z standard errors) plus a margin of practical
equivalence. The most symmetric accepted group (smallest invariant subspace) is chosen.

The rest of the network has adapted to whatever θ it was trained with, noise included, so a bare
projection can cost more than the symmetry itself does. With training frames, every group whose
loss rises by less than ``FINETUNE_WITHIN`` × rel_tol (and that is more symmetric than every
accepted group) is fine-tuned for a few epochs
with θ held in its subspace, the unconstrained model likewise, and the test is repeated on the
fine-tuned pair; the chosen group's fine-tuned weights are what ``symmetrize`` writes.

Without labelled frames only θ can be judged: G is accepted when every block of θ lies within
``block_tol`` (relative to that block's own norm) of the group's invariant subspace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data import keys
from ..nn.potential import RelaxedPotential
from .groups import CANDIDATES, GroupProjector, Projection, candidate

#: Default test: z standard errors of the paired loss difference, plus a relative margin.
Z_SCORE = 2.0
REL_TOL = 0.02
BLOCK_TOL = 0.05
#: Groups whose loss rises by less than this × rel_tol (40 %) are fine-tuned and tested again.
FINETUNE_WITHIN = 20.0


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
    finetuned: bool = False  # val_loss, delta and stderr are after fine-tuning (both models)
    accepted: bool = False


@dataclass
class Selection:
    """The chosen group, its projection, and the table it was chosen from."""

    group: str
    projection: Projection
    rows: List[GroupRow]
    criterion: str
    state: Optional[Dict[str, torch.Tensor]] = None  # the chosen model's weights, when fine-tuned

    def to_dict(self) -> Dict[str, Any]:
        frame = self.projection.frame
        return {"group": self.group, "axis": self.projection.axis,
                "frame": None if frame is None else frame.tolist(), "criterion": self.criterion,
                "table": [asdict(r) for r in self.rows]}


@dataclass
class FineTune:
    """Fine-tuning for groups a bare projection misses: the training frames (a GraphCache), epochs,
    learning rate (cosine to 0) and batch size."""

    train: Any
    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 8
    seed: int = 0


def select_group(model: RelaxedPotential, cache=None, properties: Sequence[str] = ("energy", "forces"), weights=None,
                 z: float = Z_SCORE, rel_tol: float = REL_TOL, block_tol: float = BLOCK_TOL,
                 groups: Optional[Sequence[str]] = None, finetune: Optional[FineTune] = None) -> Selection:
    """Choose θ's group for ``model``: by validation loss when ``cache`` (labelled frames, a
    :class:`~regnn_ff.train.batches.GraphCache`) is given, else by θ alone (``block_tol``).

    ``weights``: the loss weights (a LossConfig; default energy 1, forces 10). ``groups`` restricts
    the candidates (names as in :data:`~regnn_ff.analysis.groups.GROUP_NAMES`); a single group is
    taken whatever its row says (its Δ loss is still reported). ``finetune``: see the module text.
    """
    from ..train.config import LossConfig

    if model.config.l_relaxed is None:
        raise ValueError("the model has no relaxed weights θ (l_relaxed is null): it is O(3)-equivariant already")
    weights = weights or LossConfig()
    projector = projector_of(model)
    candidates = [candidate(g) for g in groups] if groups else CANDIDATES
    base = frame_losses(model, cache, properties, weights) if cache is not None else None
    rows, projections = [], []
    for group in candidates:
        projection = projector.fit(group)
        row = GroupRow(group.name, projection.axis, projection.invariant_dim, max(projection.block_residuals.values()))
        if base is not None:
            _compare(row, _losses_with(model, projection.thetas, cache, properties, weights), base, z, rel_tol)
        else:
            row.accepted = row.max_block_residual <= block_tol
        rows.append(row)
        projections.append(projection)
    states: Dict[int, Dict[str, torch.Tensor]] = {}
    tuned_loss = float("nan")
    if base is not None and finetune is not None and finetune.epochs > 0:
        states, tuned_loss = _finetune_near_misses(model, projector, candidates, rows, projections, cache, properties,
                                                   weights, finetune, z, rel_tol)
    accepted = [k for k, row in enumerate(rows) if row.accepted]
    if groups is not None and len(groups) == 1:
        accepted = [0]  # the user's choice: projected whatever the table says
    if not accepted:
        raise ValueError(f"none of the groups {[r.group for r in rows]} fits θ within the tolerance")
    best = min(accepted, key=lambda k: (rows[k].invariant_dim, k))
    if base is not None:
        criterion = (f"validation loss of {len(base)} frames: Δ ≤ {z:g}·SE + {rel_tol:g}·loss "
                     f"(unconstrained loss {float(base.mean()):.4g})")
        if states:
            criterion += (f"; near misses fine-tuned {finetune.epochs} epochs with θ in the group and compared "
                          f"with the unconstrained model fine-tuned alike (loss {tuned_loss:.4g})")
    else:
        criterion = f"θ only (no labelled frames): every block within {block_tol:g} of the group's subspace"
    return Selection(rows[best].group, projections[best], rows, criterion, states.get(best))


def _compare(row: GroupRow, losses: np.ndarray, base: np.ndarray, z: float, rel_tol: float) -> None:
    diff = losses - base
    row.val_loss = float(losses.mean())
    row.delta = float(diff.mean())
    row.stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    row.accepted = row.delta <= z * row.stderr + rel_tol * float(base.mean())


def _finetune_near_misses(model, projector: GroupProjector, candidates, rows, projections, cache, properties, weights,
                          finetune: FineTune, z: float, rel_tol: float) -> Tuple[Dict[int, Dict[str, torch.Tensor]], float]:
    """Fine-tune the groups whose loss rose by less than FINETUNE_WITHIN × rel_tol and are more
    symmetric than every accepted one, most symmetric first, until one passes; the unconstrained
    model is fine-tuned alike (its mean loss is returned), and those rows are re-judged on the pair."""
    best_dim = min((r.invariant_dim for r in rows if r.accepted), default=10**9)
    near = []
    for k, row in enumerate(rows):
        raw_base = row.val_loss - row.delta
        # The standard error grows with Δ itself, so "near" is judged by the relative margin alone.
        if not row.accepted and row.invariant_dim < best_dim and row.delta <= FINETUNE_WITHIN * rel_tol * raw_base:
            near.append(k)
    if not near:
        return {}, float("nan")
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    states: Dict[int, Dict[str, torch.Tensor]] = {}
    done: Dict[bytes, int] = {}
    try:
        _finetuned(model, start, None, finetune, properties, weights)  # the unconstrained model, equally tuned
        base = frame_losses(model, cache, properties, weights)
        for k in sorted(near, key=lambda k: (rows[k].invariant_dim, k)):
            group, row, projection = candidates[k], rows[k], projections[k]
            key = np.round(np.array(projection.thetas), 12).tobytes()
            if key in done:  # the same subspace as an earlier group (e.g. C4v and C∞v for l ≤ 2)
                states[k], projections[k] = states[done[key]], projections[done[key]]
            else:
                model.load_state_dict(start)
                if projection.frame is not None:
                    projections[k] = _refit_frame(model, projector, group, projection, finetune, properties, weights)
                states[k] = _finetuned(model, start, (projector, group, projections[k].frame), finetune, properties,
                                       weights)
                done[key] = k
            row.axis = projections[k].axis
            model.load_state_dict(states[k])
            _compare(row, frame_losses(model, cache, properties, weights), base, z, rel_tol)
            row.finetuned = True
            if row.accepted:
                break
    finally:
        model.load_state_dict(start)
    return states, float(base.mean())


def projector_of(model: RelaxedPotential) -> GroupProjector:
    """A projector built from ``model``'s current θ."""
    return GroupProjector(model.relaxed_irreps(), [t.double().numpy() for t in model.relaxed_weights()])


def project_model_(model: RelaxedPotential, projector: GroupProjector, group, frame: Optional[np.ndarray]) -> None:
    """Replace ``model``'s θ, whatever it is now, by its projection onto ``group`` placed by ``frame``."""
    current = np.stack([t.double().numpy() for t in model.relaxed_weights()])
    model.set_relaxed_weights([torch.as_tensor(t) for t in projector.project(group, frame, current)])


def _refit_frame(model: RelaxedPotential, projector: GroupProjector, group, projection: Projection, finetune: FineTune,
                 properties, weights, frames: int = 48) -> Projection:
    """The group's frame refitted by the training loss of the projected model (on up to ``frames``
    training frames): the frame that keeps most of θ's norm can be pulled off by noise blocks the
    network barely uses, while the loss weighs each block by what it does."""
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    subset = _Subset(finetune.train, frames)
    kept = [t.detach().clone() for t in model.relaxed_weights()]

    def loss(v):
        frame = Rotation.from_rotvec(v).as_matrix() @ projection.frame
        model.set_relaxed_weights([torch.as_tensor(t) for t in projector.project(group, frame)])
        return float(frame_losses(model, subset, properties, weights).mean())

    try:
        result = minimize(loss, np.zeros(3), method="Nelder-Mead",
                          options={"initial_simplex": np.vstack([np.zeros(3), 0.05 * np.eye(3)]), "xatol": 1e-4,
                                   "fatol": 1e-12, "maxiter": 80})
    finally:
        model.set_relaxed_weights(kept)
    frame = Rotation.from_rotvec(result.x).as_matrix() @ projection.frame
    return Projection(projection.group, frame, list(projector.project(group, frame)), projection.invariant_dim,
                      projection.block_residuals)


class _Subset:
    """The first ``count`` frames of a GraphCache (same ``batch`` interface)."""

    def __init__(self, cache, count: int):
        self.cache, self.count = cache, min(count, len(cache))

    def __len__(self) -> int:
        return self.count

    def batch(self, indices, device="cpu"):
        return self.cache.batch(indices, device)


def _finetuned(model: RelaxedPotential, start: Dict[str, torch.Tensor], placed, finetune: FineTune,
               properties: Sequence[str], weights) -> Dict[str, torch.Tensor]:
    """Weights after ``finetune.epochs`` epochs from ``start``, θ projected onto ``placed`` =
    (projector, group, frame) first and after every step (None: unconstrained). The model is left
    holding them."""
    from ..train.batches import epoch_batches
    from ..train.loss import loss_terms, total_loss

    model.load_state_dict(start)
    if placed is not None:
        project_model_(model, *placed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=finetune.lr, weight_decay=0.0)
    data = finetune.train
    batches = [b for epoch in range(finetune.epochs) for b in epoch_batches(len(data), finetune.batch_size, finetune.seed, epoch)]
    model.train()
    for step, indices in enumerate(batches):
        for group_params in optimizer.param_groups:
            group_params["lr"] = finetune.lr * 0.5 * (1 + np.cos(np.pi * step / len(batches)))
        batch = data.batch(indices)
        loss = total_loss(loss_terms(model(batch, list(properties)), batch, data.label_counts(indices)), weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if placed is not None:
            project_model_(model, *placed)
    model.eval()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
        tuned = " (fine-tuned)" if r.finetuned else ""
        lines.append(f"{r.group:<7}{r.invariant_dim:>4}  {axis:<26}{r.max_block_residual:>11.2g}{loss:<35}  {mark}{tuned}")
    return "\n".join(lines)


def checkpoint_data(checkpoint_state: Dict[str, Any], model: RelaxedPotential, data: Optional[str] = None,
                    finetune_epochs: int = 0):
    """(validation frames as a GraphCache, properties, loss weights, FineTune or None) for a
    checkpoint's model: its own validation split (rebuilt from the training config stored in the
    checkpoint) or the file ``data``; with ``finetune_epochs``, fine-tuning on its training split at a
    tenth of its run's learning rate. The run's data are read once."""
    from ..data.datasets import KeyMap, check_species, read_frames
    from ..train.batches import GraphCache
    from ..train.config import TrainConfig
    from ..train.loss import properties_for
    from ..train.trainer import _load_splits

    def graphs(frames):
        return GraphCache(frames, model.species_names, model.config.r_max, model.dtype)

    config = TrainConfig.from_dict(checkpoint_state["train_config"], "checkpoint: train_config")
    splits = _load_splits(config, model.field_dim) if data is None or finetune_epochs > 0 else None
    if data is not None:
        frames = read_frames(data, KeyMap.from_dict(config.data.keys, "data.keys"), model.field_dim)
    else:
        frames = splits[1]
    check_species(frames, model.species_names)
    properties = properties_for(config.loss, model.dipole_start >= 0, any(f.atoms.pbc.any() for f in frames))
    finetune = None
    if finetune_epochs > 0:
        finetune = FineTune(graphs(splits[0]), epochs=finetune_epochs, lr=0.1 * config.optim.lr,
                            batch_size=config.optim.batch_size, seed=config.seed)
    return graphs(frames), properties, config.loss, finetune


def validation_frames(checkpoint_state: Dict[str, Any], model: RelaxedPotential, data: Optional[str] = None):
    """(labelled frames as a GraphCache, properties, loss weights): see :func:`checkpoint_data`."""
    return checkpoint_data(checkpoint_state, model, data)[:3]
