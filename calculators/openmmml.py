"""openmm-ml plugin: ``MLPotential("regnn", modelPath="model.pt")``.

Registered under the ``openmmml.potentials`` entry point, so ``createSystem`` and
``createMixedSystem`` (a regnn-modelled molecule in a classical solvent) work as for any built-in
potential. Extra keyword arguments of ``createSystem``: ``field`` (V/nm, initial value of the
``regnn_E*`` global parameters), ``backend`` (``"torch"`` or ``"python"``), ``precision``
(``"single"``/``"double"`` or ``"float32"``/``"float64"``; default the model's own) and ``device``
(where the python backend runs the model). Any other keyword is refused by name, so a misspelt
``feild=`` cannot silently run at zero field.

``createMixedSystem(interpolate=True)`` copies the force (``copy.deepcopy``), which crashes
openmm-torch's TorchForce; it works with ``backend="python"`` and is refused with the torch backend.
"""

from __future__ import annotations

from typing import Iterable, Optional

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

#: Keywords openmm-ml's mechanical embedding reads itself and then passes on to ``addForces``.
EMBEDDING_KEYWORDS = ("linkAtomDistances", "mlLongRange")


class REGNNPotentialImplFactory(MLPotentialImplFactory):
    """Built by openmm-ml with no arguments; makes one implementation per ``MLPotential``."""

    def createImpl(self, name: str, modelPath: Optional[str] = None, **args) -> MLPotentialImpl:
        if args:
            raise ValueError(f"MLPotential('regnn'): unknown argument(s) {sorted(args)}; it takes modelPath only")
        if modelPath is None:
            raise ValueError("MLPotential('regnn') needs modelPath='model.pt' (a file written by 'regnn export')")
        return REGNNPotentialImpl(name, modelPath)


class REGNNPotentialImpl(MLPotentialImpl):
    def __init__(self, name: str, model_path: str):
        from regnn_ff.export.load import load_model

        self.name = name
        self.model = load_model(model_path)

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int,
                  field=None, backend: str = "torch", precision: Optional[str] = None, device: str = "cpu", **args):
        from .openmm import add_force, create_force, topology_symbols

        unknown = sorted(set(args) - set(EMBEDDING_KEYWORDS))
        if unknown:
            raise ValueError(f"MLPotential('regnn'): unknown keyword argument(s) {unknown}; "
                             "known: field, backend, precision, device")
        chosen = None if atoms is None else list(atoms)
        if system.getNumParticles() == 0 and topology.getNumAtoms() > 0:
            # openmm-ml's interpolation helper adds the potential to an empty System, then deep-copies
            # the force into the real one.
            if backend == "torch":
                raise ValueError("createMixedSystem(interpolate=True) needs backend='python': openmm-ml copies the "
                                 "force, and copying openmm-torch's TorchForce crashes the process")
            chosen, symbols = topology_symbols(topology, chosen)
            force = create_force(self.model, symbols, chosen, field=field, backend=backend,
                                 periodic=topology.getPeriodicBoxVectors() is not None, dtype=precision,
                                 device=device, num_particles=topology.getNumAtoms())
            force.setForceGroup(forceGroup)
            system.addForce(force)
            return
        add_force(system, topology, self.model, atoms=chosen, field=field, backend=backend, force_group=forceGroup,
                  dtype=precision, device=device)

