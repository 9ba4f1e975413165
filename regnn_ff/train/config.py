"""``TrainConfig``: every training hyperparameter in one YAML file, one dataclass per concern.

Unknown keys are rejected with the file, the section and the key; ``--set section.key=value``
overrides any entry from the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from ..data.datasets import KeyMap
from ..nn.config import ModelConfig
from .schedule import SCHEDULES


@dataclass
class DataConfig:
    """Where the labelled frames come from (paths relative to the YAML file's folder)."""

    train: str = ""
    val: Optional[str] = None
    test: Optional[str] = None
    val_fraction: float = 0.1  # used when no val file is given
    test_fraction: float = 0.1  # used when no test file is given
    keys: Dict[str, str] = field(default_factory=dict)  # see KeyMap: energy, forces, stress, dipole, field


@dataclass
class LossConfig:
    """Loss weights: energy per atom (eV²), forces (eV²/Å²), stress (eV²/Å⁶), dipole (e²Å²)."""

    energy: float = 1.0
    forces: float = 10.0
    stress: float = 0.0
    dipole: float = 0.0


@dataclass
class OptimConfig:
    """AdamW, a learning-rate schedule (cosine decay with warm-up, or reduce-on-plateau), EMA of
    weights, early stopping."""

    lr: float = 0.04
    weight_decay: float = 0.0
    batch_size: int = 8
    max_epochs: int = 100
    patience: int = 30  # epochs without validation improvement before stopping
    schedule: str = "cosine"  # "cosine" (decays to min_lr over max_epochs) or "plateau"
    warmup_epochs: int = 0  # cosine: linear warm-up from lr/(w+1)
    lr_factor: float = 0.5  # plateau only
    lr_patience: int = 8  # plateau only
    min_lr: float = 1e-5
    ema_decay: float = 0.99  # 0 disables the EMA
    grad_clip: float = 10.0  # max gradient norm; 0 disables clipping
    # Group lasso on θ's non-scalar blocks as a proximal step after each optimiser step: a block
    # moves κ·lr·sqrt(size) towards 0 (see RelaxedSource.shrink_), so a block whose gradients do
    # not consistently push it away from 0 stays 0 instead of fitting label noise. 0 disables it.
    theta_lasso: float = 0.1


@dataclass
class TrainConfig:
    """A training run. ``model.species`` may be left out: it is then read from the training data."""

    model: Dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run_dir: str = "runs/run"
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"train config: 'dtype' must be float32 or float64, got {self.dtype!r}")
        if not self.data.train:
            raise ValueError("train config: 'data.train' (the training data file) is required")
        if self.optim.schedule not in SCHEDULES:
            raise ValueError(f"train config: 'optim.schedule' must be one of {SCHEDULES}, got {self.optim.schedule!r}")
        if self.optim.batch_size < 1 or self.optim.max_epochs < 1:
            raise ValueError("train config: 'optim.batch_size' and 'optim.max_epochs' must be >= 1")
        KeyMap.from_dict(self.data.keys, "train config: data.keys")
        probe = dict(self.model)
        probe.setdefault("species", ["H"])
        ModelConfig.from_dict(probe, "train config: model")

    def model_config(self, species: Sequence[str]) -> ModelConfig:
        """The model's config, with ``species`` filled in from the data when the YAML has none."""
        data = dict(self.model)
        data.setdefault("species", list(species))
        return ModelConfig.from_dict(data, "train config: model")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: Union[str, Path]) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "train config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        sections = {"data": DataConfig, "loss": LossConfig, "optim": OptimConfig}
        kwargs: Dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                kwargs[key] = _section(sections[key], value, f"{source}: {key}")
            elif key == "model" and isinstance(value, dict):
                kwargs[key] = _typed(ModelConfig, value, f"{source}: model")
            elif key in {f.name for f in dataclasses.fields(cls)}:
                kwargs[key] = _typed(cls, {key: value}, source)[key]
            else:
                raise ValueError(f"{source}: unknown key '{key}'{_hint(key, [f.name for f in dataclasses.fields(cls)])}")
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: Union[str, Path], overrides: Sequence[str] = ()) -> "TrainConfig":
        """Load ``path``, apply ``key=value`` overrides, and resolve data paths against its folder."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        data = apply_overrides(data, overrides)
        config = cls.from_dict(data, str(path))
        base = path.resolve().parent
        for name in ("train", "val", "test"):
            value = getattr(config.data, name)
            if value and not Path(value).is_absolute():
                setattr(config.data, name, str(base / value))
        return config


def _hint(key: str, known: List[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _section(cls, value: Any, where: str):
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key in _REPLACED:
            raise ValueError(f"{where}: '{key}' {_REPLACED[key]}")
        if key not in known:
            raise ValueError(f"{where}: unknown key '{key}'{_hint(key, known)}")
    return cls(**_typed(cls, value, where))


#: Keys of earlier versions, with what took their place.
_REPLACED = {
    "theta_penalty": "was replaced in regnn-ff 0.2 by optim.theta_lasso, a proximal group-lasso step "
                     "that keeps θ from fitting label noise (default 0.1; 0 disables it)",
}


_KINDS = {float: "a number", int: "an integer", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}


def _typed(cls, values: Dict[str, Any], where: str) -> Dict[str, Any]:
    """``values`` checked against the types of ``cls``'s dataclass fields; a wrong type is a one-line
    error naming the key (instead of a comparison failing later deep in the code). A string that
    reads as a number is taken as one for a float entry: YAML 1.1 reads ``1e-3`` as a string."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for key, value in values.items():
        if key in hints:
            out[key] = _typed_value(value, hints[key], f"{where}: '{key}'")
    return out


def _typed_value(value: Any, hint: Any, where: str) -> Any:
    allowed = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is Union else [hint]
    optional = len(allowed) < len(typing.get_args(hint)) if typing.get_origin(hint) is Union else False
    if value is None and optional:
        return None
    kind = (typing.get_origin(allowed[0]) or allowed[0]) if len(allowed) == 1 else Any
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif kind in _KINDS and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    elif kind not in _KINDS:
        return value  # Any, or a union of several types: the dataclass checks it
    wanted = _KINDS[kind] + (" or null" if optional else "")
    raise ValueError(f"{where} must be {wanted}, got {value!r} ({type(value).__name__})")


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """``["optim.lr=1e-3", "model.l_relaxed=2"]`` → a copy of ``data`` with those entries set (values parsed as YAML)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got '{item}'")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {dotted}: '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data
