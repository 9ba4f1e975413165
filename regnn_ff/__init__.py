"""regnn-ff: relaxed-equivariant interatomic potentials for molecular dynamics under broken symmetry."""

from .nn import ModelConfig, RelaxedPotential

__version__ = "0.3.0"

__all__ = ["ModelConfig", "RelaxedPotential", "__version__"]
