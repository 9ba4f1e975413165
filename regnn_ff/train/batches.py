"""Labelled frames → cached graphs → batches with label tensors and masks for missing labels."""

from __future__ import annotations

from typing import Dict, List, Sequence, Union

import numpy as np
import torch

from ..data.datasets import Frame
from ..data.graph import batch_graphs, structure_graph

#: Label tensors in a batch: ``ref_<name>`` and ``has_<name>`` (bool mask per structure).
LABEL_SHAPES = {"energy": (), "stress": (6,), "dipole": (3,)}


class GraphCache:
    """Graphs (with neighbour lists) of a list of frames, built once; ``batch(indices)`` joins them."""

    def __init__(self, frames: Sequence[Frame], species: Sequence[str], r_max: float, dtype: torch.dtype):
        self.frames = list(frames)
        self.dtype = dtype
        self.graphs = []
        for frame in self.frames:
            try:
                graph = structure_graph(frame.atoms, species, r_max, frame.field, dtype)
            except ValueError as err:
                raise ValueError(f"{frame.source}: {err}") from None
            self.graphs.append(graph)

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, indices: Sequence[int], device: Union[str, torch.device] = "cpu") -> Dict[str, torch.Tensor]:
        """Graph batch plus ``ref_*`` label tensors and ``has_*`` masks (missing labels are zeros)."""
        out = batch_graphs([self.graphs[k] for k in indices])
        frames = [self.frames[k] for k in indices]
        for name, shape in LABEL_SHAPES.items():
            out[f"has_{name}"] = torch.tensor([name in f.labels for f in frames])
            out[f"ref_{name}"] = torch.tensor(
                np.stack([f.labels.get(name, np.zeros(shape)) for f in frames]), dtype=self.dtype
            )
        has_forces = [("forces" in f.labels) for f in frames]
        out["has_forces"] = torch.repeat_interleave(torch.tensor(has_forces), out["num_atoms"])
        out["ref_forces"] = torch.tensor(
            np.concatenate([f.labels.get("forces", np.zeros((len(f.atoms), 3))) for f in frames]), dtype=self.dtype
        )
        return {k: v.to(device) for k, v in out.items()}

    def label_counts(self, indices: Sequence[int]) -> Dict[str, float]:
        """How many labelled items each loss term of the batch ``indices`` averages over (structures,
        or components), read from the frames without building the batch."""
        frames = [self.frames[k] for k in indices]
        return {
            "energy": float(sum("energy" in f.labels for f in frames)),
            "forces": 3.0 * sum(len(f.atoms) for f in frames if "forces" in f.labels),
            "stress": 6.0 * sum("stress" in f.labels for f in frames),
            "dipole": 3.0 * sum("dipole" in f.labels for f in frames),
        }


def epoch_batches(num_frames: int, batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """Shuffled batches for one epoch, a pure function of (seed, epoch) so a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_frames, generator=generator).tolist()
    return [order[k : k + batch_size] for k in range(0, num_frames, batch_size)]
