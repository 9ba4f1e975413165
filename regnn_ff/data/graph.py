"""Structures (``ase.Atoms``) to graph dictionaries: species, positions, cell, neighbour lists.

Neighbour lists come from vesin (full lists, periodic shifts, mixed pbc, cells smaller than twice
the cutoff so an atom sees its own images). Everything is validated here, before any model code
runs, so a bad structure is reported by structure and atom index.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
import vesin
from ase import Atoms
from e3nn import o3

from . import keys

#: Pairs closer than this (Å) are reported as overlapping atoms: their direction is undefined.
MIN_DISTANCE = 1e-6

Structures = Union[Atoms, Sequence[Atoms]]


def as_structure_list(structures: Structures) -> list:
    """Return ``structures`` as a non-empty list of ``ase.Atoms``."""
    items = [structures] if isinstance(structures, Atoms) else list(structures)
    if not items:
        raise ValueError("no structures given")
    for k, atoms in enumerate(items):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"structure {k} is a {type(atoms).__name__}, expected ase.Atoms")
        if len(atoms) == 0:
            raise ValueError(f"structure {k} has no atoms")
    return items


def species_indices(atoms: Atoms, species: Sequence[str], structure: int = 0) -> np.ndarray:
    """Map chemical symbols to indices into ``species``; an unknown element is named in the error."""
    lookup = {s: i for i, s in enumerate(species)}
    symbols = atoms.get_chemical_symbols()
    for a, sym in enumerate(symbols):
        if sym not in lookup:
            raise ValueError(
                f"structure {structure}, atom {a}: element '{sym}' is not one of the model's "
                f"species {list(species)}"
            )
    return np.array([lookup[s] for s in symbols], dtype=np.int64)


def _check_geometry(atoms: Atoms, structure: int) -> None:
    pos = atoms.positions
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        a = int(bad[0])
        raise ValueError(
            f"structure {structure}, atom {a} has a non-finite position {tuple(pos[a])}"
        )
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise ValueError(f"structure {structure} has a non-finite cell")
    periodic = np.flatnonzero(atoms.pbc)
    for d in periodic:
        if np.linalg.norm(cell[d]) < 1e-8:
            raise ValueError(
                f"structure {structure} is periodic along cell vector {d}, which has zero length"
            )
    # Linearly dependent periodic vectors (a flat cell) make vesin fail, or crash the process
    # (SIGFPE) when only some directions are periodic.
    if periodic.size:
        rows = cell[periodic]
        singular = np.linalg.svd(rows, compute_uv=False)
        if singular[-1] < 1e-8 * singular[0]:
            raise ValueError(
                f"structure {structure}: the periodic cell vectors {periodic.tolist()} are linearly dependent "
                f"(zero-volume cell {np.round(rows, 6).tolist()})"
            )


#: More neighbour pairs than this (estimated from the cell, r_max and the atom count) is refused:
#: vesin would run for minutes and fill the memory (an r_max in the wrong unit, a tiny cell).
MAX_PAIRS = 5e7


def estimated_pairs(num_atoms: int, cell: np.ndarray, pbc: Sequence[bool], r_max: float) -> float:
    """Estimate of the neighbour pairs within ``r_max`` (Å): the images of the cell within reach
    along each periodic direction times all pairs of atoms, an upper bound; for a cell periodic in
    all three directions at most the count of atoms spread evenly through it (N · N/V · 4πr³/3 / 2),
    which the upper bound overstates by (L/r)³ for large cells (it refused 12,000-atom water boxes)."""
    periodic = np.flatnonzero(np.asarray(pbc, dtype=bool))
    images = 1.0
    if periodic.size:
        # Spacing of the lattice planes within the periodic subspace: 1 / |reciprocal vector|.
        reciprocal = np.linalg.pinv(np.asarray(cell, dtype=np.float64)[periodic])
        for spacing in 1.0 / np.linalg.norm(reciprocal, axis=0):
            images *= 2.0 * float(r_max) / spacing + 1.0
    bound = 0.5 * num_atoms * num_atoms * images
    if periodic.size == 3:
        volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64))))
        if volume > 0:
            even = 0.5 * num_atoms * (num_atoms / volume) * (4.0 / 3.0) * np.pi * float(r_max) ** 3
            return min(bound, even)
    return bound


def _check_pair_count(atoms: Atoms, r_max: float, structure: int) -> None:
    if not atoms.pbc.any():
        return  # at most N²/2 pairs: bounded by the structure itself
    estimate = estimated_pairs(len(atoms), atoms.cell.array, atoms.pbc, r_max)
    if estimate > MAX_PAIRS:
        raise ValueError(
            f"structure {structure}: r_max {r_max} Å in this periodic cell gives about {estimate:.2g} neighbour "
            f"pairs (more than {MAX_PAIRS:.0e}); is r_max in Å, and is the cell right?"
        )


def neighbour_list(atoms: Atoms, r_max: float, structure: int = 0):
    """Full neighbour list of one structure within ``r_max`` (Å), mirrored (see :func:`edges_mirrored`).

    Returns ``(i, j, shift)``: centre indices, neighbour indices and integer cell shifts such that
    ``r_j - r_i + shift @ cell`` is the edge vector. Each pair appears in both directions: the
    second half of the list is the first half reversed.
    """
    _check_geometry(atoms, structure)
    _check_pair_count(atoms, r_max, structure)
    i, j, shift, dist = vesin.NeighborList(cutoff=float(r_max), full_list=False).compute(
        points=np.ascontiguousarray(atoms.positions, dtype=np.float64),
        box=np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
        periodic=[bool(p) for p in atoms.pbc],
        quantities="ijSd",
    )
    close = np.flatnonzero(dist < MIN_DISTANCE)
    if close.size:
        e = int(close[0])
        raise ValueError(
            f"structure {structure}: atoms {int(i[e])} and {int(j[e])} overlap "
            f"(distance {dist[e]:.2e} Å)"
        )
    i, j = i.astype(np.int64), j.astype(np.int64)
    return np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([shift, -shift]).astype(np.float64)


def edges_mirrored(edge_index: torch.Tensor, edge_shift: torch.Tensor) -> bool:
    """True if the second half of the edges is the first half reversed (j→i, −shift).

    Graphs built here always are; the model then runs its radial MLP on the first half only.
    """
    half = edge_index.size(1) // 2
    if edge_index.size(1) != 2 * half:
        return False
    return (
        torch.equal(edge_index[0, half:], edge_index[1, :half])
        and torch.equal(edge_index[1, half:], edge_index[0, :half])
        and torch.equal(edge_shift[half:], -edge_shift[:half])
    )


def field_array(field, field_irreps: Optional[str], num_structures: int) -> Optional[np.ndarray]:
    """Validate an applied field for ``num_structures`` structures: ``(F,)`` (shared) or ``(B, F)``.

    Returns ``[B, F]`` float64, or None for no field; every problem is a one-line ``ValueError``.
    """
    if field is None:
        return None
    dim = o3.Irreps(field_irreps).dim if field_irreps else 0
    if dim == 0:
        raise ValueError("a field was given, but this model has no field input (field_irreps is None)")
    wanted = f"field must be numbers (shape ({dim},) for field irreps {o3.Irreps(field_irreps)})"
    if isinstance(field, (str, bytes, dict)):
        raise ValueError(f"{wanted}, got a {type(field).__name__} {field!r}")
    try:
        arr = np.array(field, dtype=np.float64)  # a copy: later changes to the caller's array do not leak in
    except (TypeError, ValueError):
        raise ValueError(f"{wanted}, got {field!r}") from None
    if arr.shape == (dim,):
        arr = np.tile(arr, (num_structures, 1))
    elif arr.shape != (num_structures, dim):
        raise ValueError(f"field must have shape ({dim},) or ({num_structures}, {dim}) for field irreps "
                         f"{o3.Irreps(field_irreps)}; got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"field has non-finite values: {arr.tolist()}")
    return arr


def structure_graph(
    atoms: Atoms,
    species: Sequence[str],
    r_max: float,
    field: Optional[np.ndarray] = None,
    dtype: torch.dtype = torch.float32,
    structure: int = 0,
) -> Dict[str, torch.Tensor]:
    """Graph dictionary of one structure (a batch of one); see :func:`atoms_to_graph`.

    Datasets build these once per frame and join them per batch with :func:`batch_graphs`.
    """
    spc = species_indices(atoms, species, structure)
    i, j, shift = neighbour_list(atoms, r_max, structure)
    graph = {
        keys.POSITIONS: torch.tensor(atoms.positions, dtype=dtype),
        keys.SPECIES: torch.from_numpy(spc),
        keys.BATCH: torch.zeros(len(atoms), dtype=torch.int64),
        keys.NUM_ATOMS: torch.tensor([len(atoms)]),
        keys.CELL: torch.tensor(atoms.cell.array, dtype=dtype).unsqueeze(0),
        keys.PBC: torch.tensor(np.asarray(atoms.pbc, dtype=bool)).unsqueeze(0),
        keys.EDGE_INDEX: torch.from_numpy(np.stack([i, j])),
        keys.EDGE_SHIFT: torch.tensor(shift, dtype=dtype),
    }
    if field is not None:
        graph[keys.FIELD] = torch.tensor(np.asarray(field, dtype=np.float64), dtype=dtype).reshape(1, -1)
    return graph


def _join_mirrored(parts: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """Concatenate per-graph edge tensors so that a batch of mirrored graphs is mirrored again:
    all first halves, then all second halves."""
    halves = [p.chunk(2, dim=dim) if p.size(dim) else (p, p) for p in parts]
    return torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim=dim)


def batch_graphs(graphs: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Join single-structure graphs into one batch (atom indices offset, structure index per atom)."""
    if not graphs:
        raise ValueError("no graphs to batch")
    counts = torch.cat([g[keys.NUM_ATOMS] for g in graphs])
    offsets = torch.cumsum(counts, 0) - counts
    out = {
        keys.POSITIONS: torch.cat([g[keys.POSITIONS] for g in graphs]),
        keys.SPECIES: torch.cat([g[keys.SPECIES] for g in graphs]),
        keys.BATCH: torch.repeat_interleave(torch.arange(len(graphs)), counts),
        keys.NUM_ATOMS: counts,
        keys.CELL: torch.cat([g[keys.CELL] for g in graphs]),
        keys.PBC: torch.cat([g[keys.PBC] for g in graphs]),
        keys.EDGE_INDEX: _join_mirrored([g[keys.EDGE_INDEX] + o for g, o in zip(graphs, offsets.tolist())], dim=1),
        keys.EDGE_SHIFT: _join_mirrored([g[keys.EDGE_SHIFT] for g in graphs], dim=0),
    }
    with_field = [keys.FIELD in g for g in graphs]
    if any(with_field):
        if not all(with_field):
            raise ValueError("cannot batch structures with and without a field")
        out[keys.FIELD] = torch.cat([g[keys.FIELD] for g in graphs])
    return out


def atoms_to_graph(
    structures: Structures,
    species: Sequence[str],
    r_max: float,
    field: Optional[np.ndarray] = None,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, torch.Tensor]:
    """Batch one or more structures into a graph dictionary (keys in :mod:`regnn_ff.data.keys`).

    Args:
        structures: an ``ase.Atoms`` or a list of them (positions in Å).
        species: the model's chemical symbols; atom types are indices into this list.
        r_max: neighbour cutoff in Å.
        field: optional array ``[B, F]`` of per-structure applied fields (already validated
            against the model's field irreps; E in V/Å, B in T).
        dtype: floating dtype of positions, cell, shifts and field.
        device: where the tensors are put.
    """
    items = as_structure_list(structures)
    fields = [None] * len(items) if field is None else np.asarray(field).reshape(len(items), -1)
    graphs = [structure_graph(a, species, r_max, f, dtype, k) for k, (a, f) in enumerate(zip(items, fields))]
    return {k: v.to(device) for k, v in batch_graphs(graphs).items()}
