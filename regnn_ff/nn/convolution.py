"""Channel-wise (uvu) products of node features with a filter (per edge) or with the source (per atom).

The edge product runs on the padded neighbour layout of :mod:`regnn_ff.nn.neighbours`. On a CPU the
cost of e3nn models is memory traffic on per-edge tensors, not arithmetic, so the convolution picks,
from its irreps, the form that keeps per-edge tensors smallest:

- scalar input (the first block): Σ_j over neighbours is the inner dimension of one batched matrix
  product per atom; the ``[E, C, D_out]`` messages are never formed.
- scalar output (the last block), on symmetric neighbour lists: each atom contracts its *own*
  features with the filters of its outgoing edges (one batched matrix product, no gather of
  neighbour features), and only ``[E, C]`` scalars are scattered to the receivers.
- anything else: gather each neighbour's features as ``[components, C]`` rows, weight them per
  input irrep by their paths' radial weights (a broadcast product, ``[E, paths, dim, C]``), and sum
  over neighbours and slots inside one batched matrix product per atom.

All three compute the same function (tests hold each against a plain per-edge Clebsch–Gordan
sum), and all take atoms in blocks so that no per-edge tensor exceeds 28 MB.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from e3nn import o3
from torch import nn

from .irreps import ExactConstants, couplings


class FilteredConvolution(ExactConstants):
    """m_i = Σ_j Σ_paths R_path(r_ij) · CG(x_j, h_ij), one radial weight per channel and path.

    Args:
        irreps_in: per-channel irreps of the node features x.
        irreps_filter: irreps of the filter h (the spherical harmonics, or TP_W(source, Y)).
        irreps_out: per-channel irreps of the message.
        irreps_sh: irreps of the spherical harmonics Y the filter is made from (default: the
            filter's own, for h = Y).
        symmetric_edges: every edge's reverse is in the graph with the same radial weights (full
            neighbour lists); lets a scalar-output block work from the sender's side.
        block_elements: most elements of one per-edge ``[slots, P, C]`` tensor (atoms are taken
            in blocks below it). 7·2²⁰ float32 numbers = 28 MB, under the largest size glibc's
            malloc recycles (32 MB), so with :func:`regnn_ff.performance.tune_allocator` no call
            pays for fresh pages; fewer, larger blocks also mean fewer full-size gradient buffers
            for the radial table, which autograd makes once per block.

    The filter enters through ``filter_map`` ([B, dim_Y, dim_h], see
    :class:`~regnn_ff.nn.relaxed.SourceFilter`), or h = Y when it is ``None``. It is folded with the
    coupling coefficients into one ``[dim_Y, Q · dim_out]`` table per structure, so the per-edge
    work does not depend on how many irreps the source has.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_filter: o3.Irreps, irreps_out: o3.Irreps,
                 irreps_sh: Optional[o3.Irreps] = None, symmetric_edges: bool = True,
                 block_elements: int = 7 << 20):
        super().__init__()
        irreps_sh = o3.Irreps(irreps_filter if irreps_sh is None else irreps_sh)
        plist = couplings(irreps_in, irreps_filter, irreps_out)
        # Slot q = (path, component of x): z[e, c, q] = R[e, path(q), c] * x_j[e, c, comp(q)].
        q_path, q_comp = [], []
        coupling = torch.zeros(irreps_filter.dim, sum(p.ir_a.dim for p in plist), irreps_out.dim, dtype=torch.float64)
        for k, path in enumerate(plist):
            for m in range(path.ir_a.dim):
                coupling[path.b, len(q_path), path.out] = path.cg[m]
                q_path.append(k)
                q_comp.append(path.a.start + m)
        self.num_paths = len(plist)
        self.num_slots = len(q_path)
        # Paths come ordered by their input irrep, so each input irrep's paths and slots are ranges:
        # (first path, end path, first component of x, its dim, first slot, end slot).
        groups: List[Tuple[int, int, int, int, int, int]] = []
        for k, path in enumerate(plist):
            q = sum(p.ir_a.dim for p in plist[:k])
            if groups and groups[-1][2] == path.a.start:
                p0, _, s0, d, q0, _ = groups[-1]
                groups[-1] = (p0, k + 1, s0, d, q0, q + path.ir_a.dim)
            else:
                groups.append((k, k + 1, path.a.start, path.ir_a.dim, q, q + path.ir_a.dim))
        self.groups = groups
        # Split sizes of the path and component axes into the groups (a component range no path
        # reads is a chunk of its own, skipped): autograd joins the chunks' gradients in one
        # concatenation, where a slice per group would zero a buffer of the whole block for each.
        self.path_chunks = [p1 - p0 for p0, p1, *_ in groups]
        comp_chunks: List[int] = []
        self.comp_chunk_of: List[int] = []
        end = 0
        for _, _, s0, d, _, _ in groups:
            if s0 > end:
                comp_chunks.append(s0 - end)
            self.comp_chunk_of.append(len(comp_chunks))
            comp_chunks.append(d)
            end = s0 + d
        if end < o3.Irreps(irreps_in).dim:
            comp_chunks.append(o3.Irreps(irreps_in).dim - end)
        self.comp_chunks = comp_chunks
        self.dim_in = o3.Irreps(irreps_in).dim
        self.dim_out = o3.Irreps(irreps_out).dim
        self.scalar_in = self.dim_in == 1
        self.scalar_out = self.dim_out == 1 and symmetric_edges and not self.scalar_in
        self.block_elements = block_elements
        self.register_buffer("q_path", torch.tensor(q_path), persistent=False)
        self.register_buffer("q_comp", torch.tensor(q_comp), persistent=False)
        self.register_constant("coupling", coupling.reshape(irreps_filter.dim, -1))
        # Y(-r) = (-1)^l Y(r): the filter of the reversed edge, for the sender-side form.
        parity = torch.cat([torch.full((ir.dim,), float((-1) ** ir.l)) for mul, ir in irreps_sh for _ in range(mul)])
        self.register_constant("sh_parity", parity.to(torch.float64))
        self.register_constant("path_mask", nn.functional.one_hot(torch.tensor(q_path), len(plist)).to(torch.float64))

    def forward(
        self,
        x: torch.Tensor,
        sh: torch.Tensor,
        radial_table: torch.Tensor,
        radial_row: torch.Tensor,
        neighbour: torch.Tensor,
        atom_batch: torch.Tensor,
        filter_map: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Summed messages [N, C, D_out].

        x [N, C, D_in]; neighbour [N, K]; sh [N·K, dim_Y] on the padded layout; the radial weights
        of slot s are ``radial_table[radial_row[s]]`` ([U + 1, P, C], zero for padding); atom_batch
        [N] (structure of each atom).

        Atoms are taken in blocks so that no per-edge tensor exceeds ``block_elements``: large
        tensors allocated afresh on every call cost more in page faults (first touch of memory the
        allocator handed back to the system) than the arithmetic on them.
        """
        num_atoms, width = neighbour.size(0), neighbour.size(1)
        channels = x.size(1)
        table = self.coupling.unsqueeze(0) if filter_map is None else torch.matmul(filter_map, self.coupling)
        if self.scalar_out:
            table = table * self.sh_parity.view(1, -1, 1)
        general = not self.scalar_in and not self.scalar_out
        slots = self.num_slots if general else self.num_paths
        block = max(1, self.block_elements // (width * slots * channels))
        sent = x.new_zeros(num_atoms, channels)
        # The general form gathers each neighbour's features as [D_in, C] rows (channels contiguous).
        x_rows = x.transpose(1, 2).contiguous() if general else x
        parts: List[torch.Tensor] = []
        # One gather of every slot's radial weights, split into blocks: a gather (or slice) per
        # block would make autograd zero a gradient buffer as large as the whole table for every
        # block (at 3000 atoms, 29 blocks x 114 MB of memset: half the time of a call).
        sh_blocks = torch.split(sh, block * width)
        weight_blocks = torch.split(radial_table.index_select(0, radial_row), block * width)
        for k, first in enumerate(range(0, num_atoms, block)):
            last = min(first + block, num_atoms)
            rows = last - first
            sh_block = sh_blocks[k]
            weights = weight_blocks[k]
            neighbours = neighbour[first:last].reshape(-1)
            if general:
                parts.append(self._gathered(x_rows, sh_block, table, atom_batch[first:last], weights, neighbours))
                continue
            if table.size(0) == 1:
                edge_table = torch.matmul(sh_block, table[0]).view(rows, width, -1)
            else:
                edge_table = torch.bmm(sh_block.view(rows, width, -1), table.index_select(0, atom_batch[first:last]))
            if self.scalar_in:
                parts.append(self._gather_free(x, edge_table, weights, neighbours))
            else:
                sent = sent.index_add(0, neighbours, self._sender_side(x[first:last], edge_table, weights))
        if self.scalar_out:
            return sent.unsqueeze(-1)
        return torch.cat(parts)

    def _gather_free(self, x: torch.Tensor, edge_table: torch.Tensor, weights: torch.Tensor,
                     neighbours: torch.Tensor) -> torch.Tensor:
        """Scalar input: Σ over neighbours and paths as the inner dimension of one bmm per atom."""
        rows, slots = edge_table.size(0), edge_table.size(1) * self.num_paths
        x_j = x[:, :, 0].index_select(0, neighbours)
        weighted = (weights * x_j.unsqueeze(1)).view(rows, slots, x.size(1))
        per_path = edge_table.reshape(rows, slots, self.dim_out)
        # [rows, D_out, C], then a per-atom transpose: with the channels last, neither the product
        # nor its backward copies the large per-edge operand (measured ~2x faster).
        return torch.bmm(per_path.transpose(1, 2), weighted).transpose(1, 2)

    def _sender_side(self, x_own: torch.Tensor, edge_table: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Scalar output: each atom's own features against its outgoing edges' reversed filters;
        returns the [rows·K, C] scalars its neighbours receive."""
        rows = x_own.size(0)
        x_q = x_own.index_select(2, self.q_comp).transpose(1, 2)  # [rows, Q, C]
        x_blocks = (x_q.unsqueeze(2) * self.path_mask.unsqueeze(-1)).reshape(rows, self.num_slots, -1)
        per_path = torch.bmm(edge_table, x_blocks).view(-1, self.num_paths, x_own.size(1))
        return (per_path * weights).sum(1)

    def _gathered(self, x_rows: torch.Tensor, sh_block: torch.Tensor, table: torch.Tensor, block_batch: torch.Tensor,
                  weights: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        """Any irreps: per input irrep, weight each neighbour's components by its paths' radial
        weights ([E, paths, dim, C], a broadcast product: no per-slot gathers) and sum over
        neighbours and slots as the inner dimension of one bmm per atom, as the scalar-input form."""
        rows = block_batch.size(0)
        width = sh_block.size(0) // max(rows, 1)
        x_j = x_rows.index_select(0, neighbours)  # [rows·K, D_in, C]
        x_chunks = torch.split(x_j, self.comp_chunks, dim=1)
        weight_chunks = torch.split(weights, self.path_chunks, dim=1)
        out = x_rows.new_zeros(rows, self.dim_out, x_rows.size(2))
        for g, (*_, q0, q1) in enumerate(self.groups):
            cols = table[:, :, q0 * self.dim_out : q1 * self.dim_out]
            if table.size(0) == 1:
                edge_table = torch.matmul(sh_block, cols[0])
            else:
                edge_table = torch.bmm(sh_block.view(rows, width, -1), cols.index_select(0, block_batch))
            z = weight_chunks[g].unsqueeze(2) * x_chunks[self.comp_chunk_of[g]].unsqueeze(1)  # [rows·K, paths, d, C]
            slots = width * (q1 - q0)
            out = out + torch.bmm(edge_table.reshape(rows, slots, self.dim_out).transpose(1, 2),
                                  z.reshape(rows, slots, -1))
        return out.transpose(1, 2)


class NodeSourceProduct(ExactConstants):
    """Per-atom entry of the source: y_i = TP_w(x_i, s), channel-wise with learnable path weights.

    This is how an atom with no neighbours (an isolated ion in a field) still feels θ and the field.
    ``forward(x [N, C, D_in], source [B, dim_s], batch [N]) -> [N, C, D_out]``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_source: o3.Irreps, irreps_out: o3.Irreps, channels: int):
        super().__init__()
        plist = couplings(irreps_in, irreps_source, irreps_out)
        table = torch.zeros(irreps_source.dim, len(plist), irreps_in.dim, irreps_out.dim, dtype=torch.float64)
        for k, path in enumerate(plist):
            table[path.b, k, path.a, path.out] = path.cg.permute(1, 0, 2)
        self.num_paths = len(plist)
        self.dim_in = irreps_in.dim
        self.dim_out = irreps_out.dim
        self.register_constant("table", table.reshape(irreps_source.dim, -1))
        self.weight = nn.Parameter(torch.randn(channels, len(plist)))

    def forward(self, x: torch.Tensor, source: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        per_path = torch.matmul(source, self.table).view(source.size(0), self.num_paths, -1)
        maps = torch.matmul(self.weight, per_path)  # [B, C, D_in * D_out]
        maps = maps.view(source.size(0), x.size(1), self.dim_in, self.dim_out)
        if source.size(0) == 1:
            return torch.einsum("ncx,cxy->ncy", x, maps[0])
        return torch.einsum("ncx,ncxy->ncy", x, maps[batch])
