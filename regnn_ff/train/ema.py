"""Exponential moving average of the weights, used for validation, checkpoints and export."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict

import torch


class WeightEMA:
    """shadow ← d·shadow + (1 − d)·weights after every step, with d warmed up as min(decay, (1+t)/(10+t))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = model
        self.decay = float(decay)
        self.steps = 0
        self.last_decay = 0.0  # the decay the last update used
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        self.last_decay = decay
        for name, value in self.model.state_dict().items():
            if value.is_floating_point():
                self.shadow[name].mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                self.shadow[name].copy_(value)

    @contextmanager
    def applied(self):
        """Temporarily put the averaged weights into the model (no-op when decay is 0)."""
        if self.decay <= 0:
            yield
            return
        backup = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            self.model.load_state_dict(backup)

    def weights(self) -> Dict[str, torch.Tensor]:
        return self.shadow if self.decay > 0 else self.model.state_dict()

    def state_dict(self) -> Dict:
        return {"steps": self.steps, "shadow": self.shadow}

    def load_state_dict(self, state: Dict) -> None:
        self.steps = int(state["steps"])
        current = self.model.state_dict()
        self.shadow = {k: v.to(current[k].device).clone() for k, v in state["shadow"].items()}
