"""Adapters from regnn-ff models to MD engines, imported as ``regnn_ff.calculators``.

- :class:`REGNNCalculator`: ASE calculator (energy, forces, stress, dipole; field as a parameter).
- :func:`create_force` / :func:`add_force`: OpenMM ``TorchForce`` or ``PythonForce`` with the field
  as global parameters; :func:`current_dipole` reads the dipole with either backend.
- ``MLPotential("regnn", modelPath=...)``: the openmm-ml plugin (:mod:`.openmmml`).

The core package (``regnn_ff``) never imports from here; each adapter imports its engine only
where it is used.
"""

from regnn_ff.export.load import LoadedModel, load_model

from .ase import REGNNCalculator
from .openmm import add_force, create_force, current_dipole

__all__ = ["LoadedModel", "REGNNCalculator", "add_force", "create_force", "current_dipole", "load_model"]
