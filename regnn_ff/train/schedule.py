"""Learning-rate schedules: cosine decay with linear warm-up (default), or reduce-on-plateau.

A plateau schedule whose patience is counted on an EMA-smoothed validation loss rarely fires: the
loss keeps creeping down by tiny amounts, so the rate never decays (seen on 200-epoch runs). The
cosine schedule decays by construction, over the run's ``max_epochs``.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

SCHEDULES = ("cosine", "plateau")


class LearningRate:
    """Sets the optimiser's learning rate before each epoch and sees the validation loss after it.

    cosine: lr(e) = min_lr + (lr - min_lr) · ½(1 + cos(π · (e - w) / (max_epochs - w - 1))) after a
    linear warm-up over the first w = ``warmup_epochs`` epochs; plateau: multiply by ``lr_factor``
    after ``lr_patience`` epochs without improvement (never below ``min_lr``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, optim_config):
        self.optimizer = optimizer
        self.config = optim_config
        self.plateau = None
        if optim_config.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=optim_config.lr_factor, patience=optim_config.lr_patience,
                min_lr=optim_config.min_lr)

    def rate(self, epoch: int) -> float:
        """The cosine schedule's rate for 0-based ``epoch``."""
        c = self.config
        warmup = min(c.warmup_epochs, c.max_epochs - 1)
        if epoch < warmup:
            return c.lr * (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(c.max_epochs - warmup - 1, 1)
        return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def start_epoch(self, epoch: int) -> None:
        if self.plateau is None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.rate(epoch)

    def end_epoch(self, val_loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(val_loss)

    def state_dict(self) -> Dict[str, Any]:
        return {"plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
