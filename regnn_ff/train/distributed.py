"""Data parallelism under ``torchrun``: each rank takes every world-size-th frame of each batch, and
gradients are summed (each rank's loss is already divided by the global batch's label counts)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> "Context":
        """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); single process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, requested: str) -> torch.device:
        """``cuda`` means this rank's GPU (``cuda:LOCAL_RANK``) under torchrun; anything else as given."""
        if requested == "cuda" and self.world_size > 1:
            return torch.device(f"cuda:{self.local_rank}")
        return torch.device(requested)

    def sum_gradients(self, model: torch.nn.Module) -> None:
        if self.world_size == 1:
            return
        for p in model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
