"""Edges laid out as a padded neighbour matrix ``[N, K]`` (K = most neighbours of any atom).

With every atom's edges in one row, the sum over neighbours becomes the inner dimension of a
batched matrix product (one per atom, not one per edge), so the convolution never materialises a
``[E, C, D_out]`` message tensor. Padded slots hold a dummy neighbour beyond the cutoff whose
radial weights are exactly zero, so it contributes exactly nothing.

Radial weights depend on the distance only, so when the edge list is *mirrored* (its second half
is its first half reversed, see :func:`regnn_ff.data.graph.edges_mirrored`) the radial MLP runs on
the first half only and every slot reads its row from there: half the per-edge MLP work and memory.
"""

from __future__ import annotations

from typing import Tuple

import torch


def neighbour_slots(centre: torch.Tensor, num_atoms: int) -> Tuple[torch.Tensor, int]:
    """Slot of each edge in the flattened ``[num_atoms, width]`` matrix, and the width K (≥ 1).

    Edges keep their order within a row; any edge order is accepted.
    """
    counts = torch.bincount(centre, minlength=num_atoms)
    width = 1
    if centre.numel() > 0:
        width = max(int(counts.max()), 1)
    order = torch.argsort(centre, stable=True)
    row_start = torch.cumsum(counts, 0) - counts
    sorted_centre = centre.index_select(0, order)
    rank_sorted = torch.arange(centre.numel(), device=centre.device) - row_start.index_select(0, sorted_centre)
    rank = torch.empty_like(rank_sorted).index_copy_(0, order, rank_sorted)
    return centre * width + rank, width


def pad_vectors(vectors: torch.Tensor, slot: torch.Tensor, num_slots: int, r_max: float) -> torch.Tensor:
    """Edge vectors ``[E, 3]`` (Å) scattered into ``[num_slots, 3]``; padded slots get a dummy
    vector beyond the cutoff, only so that spherical harmonics stay finite there (their radial
    weights are the zero row of :func:`with_zero_row`)."""
    dummy = torch.tensor([0.0, 0.0, 2.0 * r_max], dtype=vectors.dtype, device=vectors.device)
    return dummy.expand(num_slots, 3).index_copy(0, slot, vectors)


def padded_layout(edge_index: torch.Tensor, num_atoms: int, unique_edges: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(slot [E], neighbour [N, K], radial_row [N·K])`` for ``edge_index`` [2, E].

    ``neighbour`` holds each slot's neighbour (the centre itself on padding). ``radial_row`` is the
    row of each slot in a per-edge table of ``unique_edges + 1`` rows: edge e reads row
    ``e mod unique_edges`` (so ``unique_edges = E // 2`` shares rows between mirrored halves, and
    ``E`` gives every edge its own), and padding reads the extra last row, which must be zero.
    """
    slot, width = neighbour_slots(edge_index[0], num_atoms)
    own = torch.arange(num_atoms, device=edge_index.device).repeat_interleave(width)
    neighbour = own.index_copy(0, slot, edge_index[1]).view(num_atoms, width)
    rows = torch.arange(edge_index.size(1), device=edge_index.device)
    if unique_edges > 0:
        rows = torch.remainder(rows, unique_edges)
    radial_row = torch.full((num_atoms * width,), unique_edges, dtype=torch.long, device=edge_index.device)
    return slot, neighbour, radial_row.index_copy(0, slot, rows)


def with_zero_row(values: torch.Tensor) -> torch.Tensor:
    """Append the zero row that padded slots read (see :func:`padded_layout`)."""
    return torch.cat([values, values.new_zeros(1, values.size(1))])
