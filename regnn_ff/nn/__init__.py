"""Relaxed-equivariant layers and the potential built from them."""

from .config import ModelConfig
from .interaction import RelaxedInteraction
from .potential import RelaxedPotential
from .relaxed import RelaxedSource, SourceFilter

__all__ = ["ModelConfig", "RelaxedInteraction", "RelaxedPotential", "RelaxedSource", "SourceFilter"]
