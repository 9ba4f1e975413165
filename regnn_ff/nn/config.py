"""``ModelConfig``: every hyperparameter of a :class:`~regnn_ff.RelaxedPotential`, typed and validated."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml
from ase.data import atomic_numbers
from e3nn import o3

RELAXED_ENTRIES = ("both", "edge", "node")
#: Å; the last block's default cutoff (chosen on bench/accuracy.py's Pareto plot, see the README).
DEFAULT_LAST_R_MAX = 3.0


@dataclass
class ModelConfig:
    """Architecture of a relaxed-equivariant potential.

    Attributes:
        species: chemical symbols the model knows, e.g. ``["H", "O"]``.
        r_max: neighbour cutoff (Å).
        last_r_max: cutoff of the last block (Å, at most ``r_max``); ``None`` = 3.0 Å, or ``r_max``
            if that is shorter. The last block couples directional features of neighbours (the
            costliest per-edge work), so a shorter cutoff there buys speed for some accuracy (the
            README's Accuracy section has both); the receptive field is (num_layers - 1)·r_max + last_r_max.
        num_layers: number of interaction blocks.
        channels: channels per irrep of the hidden features.
        l_max: highest l of the spherical harmonics and of each atom's density (natural parity:
            0e, 1o, 2e, ...).
        hidden_l_max: highest l of the features passed from one block to the next (MACE's hidden
            irreps; with ``correlation=1`` the density is these features); ``None`` = ``l_max``.
        num_basis: Bessel radial basis functions.
        cutoff_p: order of the polynomial cutoff envelope.
        radial_hidden, radial_layers: width and depth of the radial MLP.
        readout_hidden: width of the per-atom energy MLP.
        avg_num_neighbors: normalisation of summed messages (training sets it from data).
        correlation: highest power of each atom's density coupled with itself in every block
            (ACE/MACE-style many-body product; 1 = two-body messages only).
        last_density_l_max: highest l of the last block's density before its product reduces it to
            scalars (0: scalar messages, the fastest form; up to ``l_max``; > 0 needs correlation > 1);
            ``None`` = ``l_max`` (0 without a product).
        l_relaxed: highest l of the relaxed weights θ (both parities); ``None`` = strictly equivariant.
        relaxed_mul: multiplicity of each irrep of θ.
        relaxed_entry: where the source θ ⊕ field acts: ``"edge"`` (filter), ``"node"`` (per atom) or ``"both"``.
        field_irreps: irreps of an applied-field input, e.g. ``"1x1o"`` (E in V/Å) or ``"1x1e"`` (B in T);
            ``None`` = no field input. The dipole is -dE/d(first 1o block).
        field_time_reversal: average the energy over the field and its time reverse (axial blocks,
            odd l with even parity, negated), so E(B) = E(-B) as for a non-magnetic system.
    """

    species: List[str]
    r_max: float = 5.0
    last_r_max: Optional[float] = None
    num_layers: int = 2
    channels: int = 32
    l_max: int = 2
    hidden_l_max: Optional[int] = None
    num_basis: int = 8
    cutoff_p: int = 6
    radial_hidden: int = 64
    radial_layers: int = 2
    readout_hidden: int = 16
    avg_num_neighbors: float = 20.0
    correlation: int = 3
    last_density_l_max: Optional[int] = None
    l_relaxed: Optional[int] = None
    relaxed_mul: int = 1
    relaxed_entry: str = "both"
    field_irreps: Optional[str] = None
    field_time_reversal: bool = False

    def __post_init__(self):
        def fail(key: str, why: str):
            raise ValueError(f"model config: '{key}' {why}")

        if isinstance(self.species, str) or not self.species:
            fail("species", "must be a non-empty list of chemical symbols")
        self.species = [str(s) for s in self.species]
        for s in self.species:
            if s not in atomic_numbers or s == "X":
                fail("species", f"contains '{s}', which is not a chemical symbol")
        if len(set(self.species)) != len(self.species):
            fail("species", f"has duplicates: {self.species}")
        if not self.r_max > 0:
            fail("r_max", f"must be > 0 Å, got {self.r_max}")
        if self.last_r_max is None:
            self.last_r_max = min(DEFAULT_LAST_R_MAX, self.r_max)
        if not (isinstance(self.last_r_max, (int, float)) and 0 < self.last_r_max <= self.r_max):
            fail("last_r_max", f"must be a cutoff in Å, > 0 and at most r_max ({self.r_max}), got {self.last_r_max!r}")
        self.last_r_max = float(self.last_r_max)
        for key in ("num_layers", "channels", "num_basis", "radial_hidden", "readout_hidden", "relaxed_mul"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= 1):
                fail(key, f"must be an integer >= 1, got {getattr(self, key)!r}")
        for key in ("l_max", "radial_layers", "cutoff_p"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= 0):
                fail(key, f"must be an integer >= 0, got {getattr(self, key)!r}")
        if self.correlation not in (1, 2, 3):
            fail("correlation", f"must be 1, 2 or 3, got {self.correlation!r}")
        # Unset: as high as the spherical harmonics (the most accurate choice in bench/accuracy.py).
        if self.hidden_l_max is None:
            self.hidden_l_max = self.l_max
        if self.last_density_l_max is None:
            self.last_density_l_max = self.l_max if self.correlation > 1 else 0
        if not (isinstance(self.hidden_l_max, int) and 0 <= self.hidden_l_max <= self.l_max):
            fail("hidden_l_max", f"must be an integer from 0 to l_max ({self.l_max}), got {self.hidden_l_max!r}")
        if not (isinstance(self.last_density_l_max, int) and 0 <= self.last_density_l_max <= self.l_max):
            fail("last_density_l_max", f"must be an integer from 0 to l_max ({self.l_max}), got {self.last_density_l_max!r}")
        if self.last_density_l_max > 0 and self.correlation == 1:
            fail("last_density_l_max", "> 0 needs correlation > 1 (the product reduces the density to scalars)")
        if self.l_relaxed is not None and not (isinstance(self.l_relaxed, int) and self.l_relaxed >= 0):
            fail("l_relaxed", f"must be null or an integer >= 0, got {self.l_relaxed!r}")
        if self.relaxed_entry not in RELAXED_ENTRIES:
            fail("relaxed_entry", f"must be one of {RELAXED_ENTRIES}, got {self.relaxed_entry!r}")
        if not self.avg_num_neighbors > 0:
            fail("avg_num_neighbors", f"must be > 0, got {self.avg_num_neighbors}")
        if self.field_irreps is not None:
            try:
                irreps = o3.Irreps(self.field_irreps)
            except (ValueError, AssertionError) as err:
                fail("field_irreps", f"is not an irreps string ({self.field_irreps!r}: {err})")
            if irreps.dim == 0:
                fail("field_irreps", "is empty; use null for no field")
            self.field_irreps = str(irreps)

    @property
    def receptive_field(self) -> float:
        """Distance (Å) beyond which an atom cannot change another's energy: (num_layers − 1)·r_max +
        last_r_max; also the ghost depth a spatially decomposed engine needs."""
        return (self.num_layers - 1) * self.r_max + self.last_r_max

    @property
    def has_source(self) -> bool:
        """True if the layers carry a symmetry-breaking source (θ and/or a field)."""
        return self.l_relaxed is not None or self.field_irreps is not None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "model config") -> "ModelConfig":
        """Build from a dict; an unknown key is an error naming the key (and ``source``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of model options, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"{source}: unknown key '{key}'{hint}")
        if "species" not in data:
            raise ValueError(f"{source}: missing required key 'species'")
        try:
            return cls(**data)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    def to_yaml(self, path: Union[str, Path]) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "ModelConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        return cls.from_dict(data, source=str(path))
