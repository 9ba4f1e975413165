"""``train``: the training loop behind ``regnn train``.

Run directory: ``config.yaml`` (as used), ``best.ckpt`` (EMA weights at the best validation
loss), ``last.ckpt`` (everything needed to resume exactly), ``metrics.csv``, ``learning_curve.png``
and ``summary.json`` (the final metrics table).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import yaml
from e3nn import o3
from tqdm import tqdm

from ..atomic import atomic_path
from ..data.datasets import KeyMap, check_species, read_frames, species_in, split_frames
from ..nn.potential import RelaxedPotential
from ..validate import data_range, torch_device, warn_ignored_inputs
from .batches import GraphCache, epoch_batches
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint, stored_model_config
from .config import TrainConfig
from .distributed import Context
from .ema import WeightEMA
from .loss import loss_terms, properties_for, total_loss
from .metrics import error_metrics, format_table
from .run_dir import check_resume, claim_run_dir
from .schedule import LearningRate
from .statistics import force_rms, mean_neighbours, reference_energies


@dataclass
class Prepared:
    model: RelaxedPotential
    train: GraphCache
    val: GraphCache
    test: Optional[GraphCache]
    properties: List[str]


def _load_splits(config: TrainConfig, field_dim: int):
    keys = KeyMap.from_dict(config.data.keys, "data.keys")
    frames = read_frames(config.data.train, keys, field_dim)
    val = read_frames(config.data.val, keys, field_dim) if config.data.val else None
    test = read_frames(config.data.test, keys, field_dim) if config.data.test else None
    val_fraction = 0.0 if val is not None else config.data.val_fraction
    test_fraction = 0.0 if test is not None else config.data.test_fraction
    train, val_split, test_split = split_frames(frames, val_fraction, test_fraction, config.seed)
    val = val if val is not None else val_split
    test = test if test is not None else test_split
    if not val:
        raise ValueError("no validation frames: give data.val or a data.val_fraction > 0")
    return train, val, test


def prepare(config: TrainConfig) -> Prepared:
    """Read and split the data, fit statistics on the training set, build the model."""
    dtype = getattr(torch, config.dtype)
    probe = config.model_config(["H"])
    field_dim = o3.Irreps(probe.field_irreps).dim if probe.field_irreps else 0
    train, val, test = _load_splits(config, field_dim)
    species = list(config.model.get("species") or species_in(list(train) + list(val) + list(test)))
    for frames in (train, val, test):
        check_species(frames, species)
    train_cache = GraphCache(train, species, probe.r_max, dtype)
    model_dict = dict(config.model, species=species)
    if "avg_num_neighbors" not in config.model:
        model_dict["avg_num_neighbors"] = mean_neighbours(
            [g["edge_index"].shape[1] for g in train_cache.graphs], [len(f.atoms) for f in train]
        )
    torch.manual_seed(config.seed)
    model = RelaxedPotential(TrainConfig.from_dict(dict(config.to_dict(), model=model_dict)).model_config(species))
    model = model.to(dtype)
    model.readout.set_statistics(reference_energies(train, species), force_rms(train))
    periodic = any(f.atoms.pbc.any() for f in train)
    properties = properties_for(config.loss, model.dipole_start >= 0, periodic)
    warn_ignored_inputs(train, KeyMap.from_dict(config.data.keys).field, field_dim, model.dipole_start >= 0,
                        config.data.train, config.loss.dipole)
    return Prepared(
        model=model,
        train=train_cache,
        val=GraphCache(val, species, probe.r_max, dtype),
        test=GraphCache(test, species, probe.r_max, dtype) if test else None,
        properties=properties,
    )


def validation_loss(metrics: Dict[str, float], config: TrainConfig) -> float:
    """The training loss on validation data, rebuilt from the RMSEs (same terms and weights)."""
    total = 0.0
    for name in ("energy", "forces", "stress", "dipole"):
        if f"{name}_rmse" in metrics:
            total += getattr(config.loss, name) * (metrics[f"{name}_rmse"] / 1e3) ** 2
    return total


def _optimizer(model: RelaxedPotential, config: TrainConfig) -> torch.optim.Optimizer:
    # θ gets no weight decay: decay would pull its scalar part from 1 towards 0.
    theta = [p for n, p in model.named_parameters() if n.endswith("source.theta")]
    ids = {id(p) for p in theta}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": rest, "weight_decay": config.optim.weight_decay}]
    if theta:
        # A short second-moment memory for θ: its Adam steps then measure how consistently the
        # recent gradients push each entry (what the group-lasso step compares against), not the
        # size of the early, large gradients.
        groups.append({"params": theta, "weight_decay": 0.0, "betas": (0.9, 0.99)})
    return torch.optim.AdamW(groups, lr=config.optim.lr)


def _shrink_theta(model: RelaxedPotential, ema: WeightEMA, step: float) -> None:
    """The group-lasso proximal step on θ, and on its EMA copy in proportion to how far the EMA moves
    per step (the full step there would hold a needed block far below the weights it averages)."""
    model.shrink_relaxed_(step)
    if ema.decay > 0:
        model.shrink_relaxed_(step * (1.0 - ema.last_decay), ema.shadow)


def _write_csv(path: Path, history: List[Dict[str, float]]) -> None:
    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def _plot(path: Path, history: List[Dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].semilogy(epochs, [row["train_loss"] for row in history], label="train")
    axes[0].semilogy(epochs, [row["val_loss"] for row in history], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    if all("val_forces_mae" in row for row in history):
        axes[1].semilogy(epochs, [row["val_forces_mae"] for row in history])
        axes[1].set_ylabel("validation force MAE (meV/Å)")
    axes[1].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, resume: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Train a model as ``config`` says; with ``resume`` continue from ``run_dir/last.ckpt``.

    The run directory is locked for the run (a second trainer into it fails at once, naming the
    first one's pid); a resume must keep the model and dtype it was started with. Returns the run
    directory.
    """
    torch_device(config.device)  # a missing GPU is a one-line error before any data is read
    if resume:
        check_resume(config.to_dict(), config.run_dir)
    # Only the main process (rank 0 under torchrun) writes into the run directory.
    lock = claim_run_dir(config.run_dir) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        return _train(config, resume, echo)
    finally:
        if lock is not None:
            lock.release()


def _train(config: TrainConfig, resume: bool, echo: Callable[[str], None]) -> Path:
    ctx = Context.from_env(config.device)
    run_dir = Path(config.run_dir)
    say = echo if ctx.is_main else (lambda line: None)
    if run_dir.joinpath("last.ckpt").exists() and not resume:
        raise ValueError(f"{run_dir} already holds a training run; resume it with --resume or choose another run_dir")
    prepared = prepare(config)
    device = ctx.device(config.device)
    model, props = prepared.model.to(device), prepared.properties
    optimizer = _optimizer(model, config)
    scheduler = LearningRate(optimizer, config.optim)
    ema = WeightEMA(model, config.optim.ema_decay)
    start_epoch, best, stale, history = 0, math.inf, 0, []
    if resume:
        state = load_checkpoint(run_dir / "last.ckpt")
        stored = stored_model_config(state, run_dir / "last.ckpt").to_dict()
        changed = sorted(k for k, v in model.config.to_dict().items() if stored.get(k) != v)
        if changed:  # e.g. a package default changed since the run started: same tensors, other model
            raise ValueError(f"cannot resume {run_dir}: its checkpoint's model differs in "
                             + ", ".join(f"{k} ({stored.get(k)!r} -> {getattr(model.config, k)!r})" for k in changed)
                             + "; set these in the config, or start a new run_dir")
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("ema"):
            ema.load_state_dict(state["ema"])
        start_epoch, best, stale, history = state["epoch"], state["best_val"], state["stale"], state["history"]
        say(f"resuming {run_dir} after epoch {start_epoch}")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run_dir / "config.yaml")
    say(f"{len(prepared.train)} train / {len(prepared.val)} val / {len(prepared.test or [])} test frames; "
        f"species {model.species_names}; outputs {props}; {sum(p.numel() for p in model.parameters())} parameters")

    def checkpoint_state(epoch: int) -> Dict:
        return {
            "model_config": model.config.to_dict(), "train_config": config.to_dict(), "dtype": config.dtype,
            "model_state": model.state_dict(), "ema_state": ema.weights() if config.optim.ema_decay > 0 else None,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict(), "epoch": epoch, "best_val": best, "stale": stale, "history": history,
            "data_range": data_range(prepared.train.frames),
        }

    show_bar = ctx.is_main and sys.stderr.isatty()
    for epoch in range(start_epoch, config.optim.max_epochs):
        started = time.perf_counter()
        scheduler.start_epoch(epoch)
        model.train()
        seen, loss_sum = 0.0, 0.0
        batches = epoch_batches(len(prepared.train), config.optim.batch_size, config.seed, epoch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not show_bar)
        for indices in bar:
            counts = prepared.train.label_counts(indices)  # of the whole batch, also when it is split over ranks
            mine = indices[ctx.rank :: ctx.world_size]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.zeros((), dtype=model.dtype, device=device)
            if mine:
                batch = prepared.train.batch(mine, device)
                out = model(batch, props)
                loss = total_loss(loss_terms(out, batch, counts), config.loss)
            if loss.requires_grad:
                loss.backward()
            ctx.sum_gradients(model)
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            ema.update()
            if config.optim.theta_lasso > 0:
                _shrink_theta(model, ema, config.optim.theta_lasso * optimizer.param_groups[-1]["lr"])
            loss_sum += float(loss.detach()) * len(indices)
            seen += len(indices)
            bar.set_postfix(loss=f"{loss_sum / seen:.4g}")
        model.eval()
        with ema.applied():
            val_metrics = error_metrics(model, prepared.val, props, device=device)
        val_loss = validation_loss(val_metrics, config)
        scheduler.end_epoch(val_loss)
        improved = val_loss < best
        if improved:
            best, stale = val_loss, 0
        else:
            stale += 1
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(seen, 1),
               "val_loss": val_loss, "time_s": time.perf_counter() - started}
        row.update({f"val_{k}": v for k, v in val_metrics.items()})
        history.append(row)
        if ctx.is_main:
            if improved:
                save_checkpoint(checkpoint_state(epoch + 1), run_dir / "best.ckpt")
            save_checkpoint(checkpoint_state(epoch + 1), run_dir / "last.ckpt")
            _write_csv(run_dir / "metrics.csv", history)
        shown = "  ".join(f"{k[:-4]} MAE {v:.2f}" for k, v in val_metrics.items() if k.endswith("_mae"))
        say(f"epoch {epoch + 1:4d}  loss {row['train_loss']:.4g}  val {val_loss:.4g}  {shown}  "
            f"lr {row['lr']:.2g}{'  *' if improved else ''}")
        if stale >= config.optim.patience:
            say(f"no validation improvement for {stale} epochs: stopping")
            break
    ctx.barrier()
    if ctx.is_main:
        _finish(run_dir, prepared, props, history, say)
    ctx.close()
    return run_dir


def _finish(run_dir: Path, prepared: Prepared, props: Sequence[str], history, say) -> None:
    best = model_from_checkpoint(run_dir / "best.ckpt")
    results = {"val": error_metrics(best, prepared.val, props)}
    if prepared.test is not None:
        results["test"] = error_metrics(best, prepared.test, props)
    (run_dir / "summary.json").write_text(json.dumps(results, indent=1))
    if history:
        _plot(run_dir / "learning_curve.png", history)
    say("\n" + format_table(results))


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config a run was started with (its ``config.yaml``), with ``key=value`` overrides."""
    from .config import apply_overrides

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {run_dir} a training run?)")
    data = apply_overrides(yaml.safe_load(path.read_text()), overrides)
    config = TrainConfig.from_dict(data, str(path))
    config.run_dir = str(run_dir)
    return config
