"""Irreps bookkeeping and Clebsch–Gordan blocks shared by the layers.

Features are stored *channel-major*: a tensor ``[N, C, D]`` holds C channels, each carrying the same
per-channel irreps (multiplicity one each, total dimension D). Channel-wise ("uvu") products then
act on the last axis only, which keeps per-edge tensors small and contiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from e3nn import o3


def natural_irreps(l_max: int) -> o3.Irreps:
    """``0e + 1o + 2e + ...`` up to ``l_max`` (multiplicity one each)."""
    return o3.Irreps([(1, (l, (-1) ** l)) for l in range(l_max + 1)])


def both_parity_irreps(l_max: int, mul: int = 1) -> o3.Irreps:
    """``0e + 0o + 1o + 1e + 2e + 2o + ...`` up to ``l_max``, natural parity first in each l."""
    out = []
    for l in range(l_max + 1):
        natural = (-1) ** l
        out += [(mul, (l, natural)), (mul, (l, -natural))]
    return o3.Irreps(out)


def flat(irreps: o3.Irreps) -> List[o3.Irrep]:
    """One entry per irrep *instance* (multiplicities expanded), in order."""
    return [ir for mul, ir in o3.Irreps(irreps) for _ in range(mul)]


def offsets(irreps: Sequence[o3.Irrep]) -> List[int]:
    """Start index of each irrep instance in the flattened component axis."""
    out, k = [], 0
    for ir in irreps:
        out.append(k)
        k += ir.dim
    return out


def paths(
    a: Sequence[o3.Irrep], b: Sequence[o3.Irrep], out: Sequence[o3.Irrep]
) -> List[Tuple[int, int, int]]:
    """All (i_a, i_b, i_out) allowed by the triangle rule and parity, ordered by i_a then i_b."""
    found = []
    for ia, ir_a in enumerate(a):
        for ib, ir_b in enumerate(b):
            for io, ir_o in enumerate(out):
                if ir_o in ir_a * ir_b:
                    found.append((ia, ib, io))
    return found


def clebsch_gordan(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Coupling tensor ``[2l1+1, 2l2+1, 2l3+1]`` in e3nn's real basis (float64).

    Scaled by sqrt(2 l3 + 1) ("component" normalisation): coupling two unit-variance inputs gives a
    unit-variance output component.
    """
    return o3.wigner_3j(l1, l2, l3, dtype=torch.float64) * math.sqrt(2 * l3 + 1)


def fan_in(path_list: Sequence[Tuple[int, int, int]], num_out: int) -> List[float]:
    """Per-path normalisation 1/sqrt(number of paths into the path's output irrep)."""
    count = [0] * num_out
    for _, _, io in path_list:
        count[io] += 1
    return [1.0 / math.sqrt(count[io]) for _, _, io in path_list]


@dataclass(frozen=True)
class Coupling:
    """One allowed coupling a ⊗ b → out between irrep instances.

    ``a``, ``b``, ``out`` are the instances' slices on their component axes, ``ir_*`` their irreps,
    ``cg`` the coupling tensor ``[dim a, dim b, dim out]`` already scaled by 1/sqrt(number of
    couplings into the same output instance).
    """

    a: slice
    b: slice
    out: slice
    ir_a: o3.Irrep
    ir_b: o3.Irrep
    ir_out: o3.Irrep
    cg: torch.Tensor


def couplings(irreps_a: o3.Irreps, irreps_b: o3.Irreps, irreps_out: o3.Irreps) -> List[Coupling]:
    """Every coupling of ``irreps_a ⊗ irreps_b → irreps_out`` (ordered by a, then b); raises if none."""
    a, b, out = flat(irreps_a), flat(irreps_b), flat(irreps_out)
    plist = paths(a, b, out)
    if not plist:
        raise ValueError(f"no coupling path from {irreps_a} x {irreps_b} to {irreps_out}")
    norm = fan_in(plist, len(out))
    off_a, off_b, off_o = offsets(a), offsets(b), offsets(out)
    return [
        Coupling(
            a=slice(off_a[ia], off_a[ia] + a[ia].dim), b=slice(off_b[ib], off_b[ib] + b[ib].dim),
            out=slice(off_o[io], off_o[io] + out[io].dim), ir_a=a[ia], ir_b=b[ib], ir_out=out[io],
            cg=clebsch_gordan(a[ia].l, b[ib].l, out[io].l) * scale,
        )
        for (ia, ib, io), scale in zip(plist, norm)
    ]


def slice_of(irreps: Sequence[o3.Irrep], target: o3.Irrep) -> Optional[slice]:
    """Slice of the first instance of ``target`` in the component axis, or None if absent."""
    for start, ir in zip(offsets(irreps), irreps):
        if ir == target:
            return slice(start, start + ir.dim)
    return None


class ExactConstants(torch.nn.Module):
    """Base for modules holding exact constants (coupling tables) as buffers.

    The constants are kept in float64 and re-cast from there whenever the module changes dtype or
    device, so a model built in float32 and switched with ``.double()`` is exactly equivariant in
    float64 (a float32-rounded Clebsch–Gordan table would break equivariance at ~1e-8).
    """

    def __init__(self):
        super().__init__()
        self._exact = {}  # name -> float64 CPU copy (not scripted: only used by _apply)

    def register_constant(self, name: str, value: torch.Tensor) -> None:
        self._exact[name] = value.detach().to("cpu")
        dtype = torch.get_default_dtype() if value.is_floating_point() else value.dtype
        self.register_buffer(name, value.to(dtype), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, exact in self._exact.items():
            current = getattr(self, name)
            setattr(self, name, exact.to(device=current.device, dtype=current.dtype))
        return self
