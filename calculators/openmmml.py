"""openmm-ml plugin: ``MLPotential("regnn", modelPath="model.pt")``.

Registered under the ``openmmml.potentials`` entry point, so ``createSystem`` and
``createMixedSystem`` (a regnn-modelled molecule in a classical solvent) work as for any built-in
potential. Extra keyword arguments of ``createSystem``: ``field`` (V/nm, initial value of the
``regnn_E*`` global parameters) and ``backend`` (``"torch"`` or ``"python"``).
"""

from __future__ import annotations

from typing import Iterable, Optional

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory


class REGNNPotentialImplFactory(MLPotentialImplFactory):
    """Built by openmm-ml with no arguments; makes one implementation per ``MLPotential``."""

    def createImpl(self, name: str, modelPath: Optional[str] = None, **args) -> MLPotentialImpl:
        if modelPath is None:
            raise ValueError("MLPotential('regnn') needs modelPath='model.pt' (a file written by 'regnn export')")
        return REGNNPotentialImpl(name, modelPath)


class REGNNPotentialImpl(MLPotentialImpl):
    def __init__(self, name: str, model_path: str):
        from .loader import load_model

        self.name = name
        self.model = load_model(model_path)

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int,
                  field=None, backend: str = "torch", **args):
        from .openmm import add_force

        add_force(system, topology, self.model, atoms=None if atoms is None else list(atoms), field=field,
                  backend=backend, force_group=forceGroup)
