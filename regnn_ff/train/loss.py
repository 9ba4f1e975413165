"""Weighted squared-error loss over whatever labels each batch has."""

from __future__ import annotations

from typing import Dict

import torch

from .config import LossConfig


def properties_for(loss: LossConfig, has_e_field: bool, periodic: bool) -> list:
    """Model outputs a training step needs."""
    props = ["energy"]
    if loss.forces > 0:
        props.append("forces")
    if loss.stress > 0 and periodic:
        props.append("stress")
    if loss.dipole > 0 and has_e_field:
        props.append("dipole")
    return props


def loss_terms(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor], counts: Dict[str, float]) -> Dict[str, torch.Tensor]:
    """Sums of squared errors divided by ``counts`` (the *global* batch's label counts, so that
    data-parallel ranks' terms add up to the single-process loss). Energy is compared per atom."""
    terms: Dict[str, torch.Tensor] = {}
    n = batch["num_atoms"].to(out["energy"].dtype)
    if counts["energy"] > 0:
        mask = batch["has_energy"]
        error = ((out["energy"] - batch["ref_energy"]) / n)[mask]
        terms["energy"] = error.pow(2).sum() / counts["energy"]
    for name in ("forces", "stress", "dipole"):
        if name in out and counts[name] > 0:
            mask = batch[f"has_{name}"]
            terms[name] = (out[name] - batch[f"ref_{name}"])[mask].pow(2).sum() / counts[name]
    return terms


def total_loss(terms: Dict[str, torch.Tensor], weights: LossConfig) -> torch.Tensor:
    total = torch.zeros((), dtype=next(iter(terms.values())).dtype) if terms else torch.zeros(())
    for name, value in terms.items():
        total = total + getattr(weights, name) * value
    return total
