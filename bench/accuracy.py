"""Accuracy against MACE on held-out GFN2-xTB data, and the demo-data check ``speed.py`` prints.

    python bench/accuracy.py [--quick] [--force] [--set model.channels=64 --label wide]

Two reference sets, labelled with the project's own GFN2-xTB (tblite) labelling, deterministic by
seed and cached under ``bench/data/`` (made only when missing):

* **ethanol**: xTB Langevin MD at 500 K (0.5 fs steps, a frame every 40 steps, no field), 1,700
  frames after a burn-in; fixed random splits train 1,000 (its first 200 are the small training
  set), validation 100, test 500 (the rMD17 protocol: train on 200 and on 1,000, test on 500).
* **water32**: non-periodic clusters of 32 flexible waters (96 atoms). Geometries from classical MD
  (OpenMM, TIP3P with flexible bonds, no cutoff, a weak flat-bottom spherical restraint on the
  oxygens, 330 K, a frame every 1 ps), each labelled by one xTB single point; 260 frames: train
  160, validation 20, test 80.

``from accuracy import ethanol_set, water_set`` gives the split files (``{"train": Path, ...}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import time_interleaved  # noqa: E402

from regnn_ff.data.label import labelled, sample_configurations, write_frames  # noqa: E402
from regnn_ff.data.structures import water_box  # noqa: E402
from regnn_ff.demo import FIELD_MAX, demo_config  # noqa: E402
from regnn_ff.train import model_from_checkpoint, train  # noqa: E402

BENCH_WIDTH = {"channels": 32, "l_max": 2, "r_max": 5.0, "num_layers": 2}


def demo_accuracy(workdir: Path, epochs: int = 30, frames: int = 160, repeats: int = 10) -> dict:
    """Train the demo's run at the bench width; test MAE (meV/atom, meV/Å, e·mÅ) and ms per call."""
    data = workdir / "demo-data.xyz"
    write_frames(sample_configurations("H2O", frames, field_max=FIELD_MAX, seed=0), data)
    config = demo_config(data, workdir / "demo-run", epochs)
    config.model.update(BENCH_WIDTH)
    run = train(config, echo=lambda line: None)
    test = json.loads((run / "summary.json").read_text())["test"]
    model = model_from_checkpoint(run / "best.ckpt").float().eval()
    box = water_box(64)
    seconds = time_interleaved({"trained": lambda: model.compute(box, field=[0.0, 0.0, 0.1])}, repeats)["trained"]
    return {"epochs": epochs, "energy_mae": test["energy_mae"], "forces_mae": test["forces_mae"],
            "dipole_mae": test.get("dipole_mae"), "ms_per_call_192": seconds * 1e3}


def describe(result: dict) -> str:
    return (f"demo data, bench width, {result['epochs']} epochs: test force MAE {result['forces_mae']:.1f} meV/Å, "
            f"energy {result['energy_mae']:.2f} meV/atom, dipole {result['dipole_mae']:.1f} e·mÅ; "
            f"{result['ms_per_call_192']:.1f} ms per call at 192 atoms")


# --------------------------------------------------------------------------------------------------
# Reference data (cached under bench/data/, regenerated only when a file is missing or the recipe changed)

DATA = HERE / "data"
SPLIT_NAMES = ("train", "val", "test")

#: The recipes. ``quick`` is a tiny set of the same kind for smoke runs (``--quick``).
ETHANOL = {"full": dict(frames=1700, burn_in=20, stride=40, timestep_fs=0.5, temperature=500.0, seed=0,
                        train=1000, small_train=200, val=100, test=500),
           "quick": dict(frames=60, burn_in=5, stride=40, timestep_fs=0.5, temperature=500.0, seed=0,
                         train=24, small_train=12, val=8, test=16)}
WATER = {"full": dict(molecules=32, frames=260, equilibration_ps=20.0, interval_ps=1.0, timestep_fs=0.5,
                      temperature=330.0, restraint_radius=6.5, restraint_k=5.0, seed=0, train=160, val=20, test=80),
         "quick": dict(molecules=32, frames=12, equilibration_ps=2.0, interval_ps=1.0, timestep_fs=0.5,
                       temperature=330.0, restraint_radius=6.5, restraint_k=5.0, seed=0, train=6, val=2, test=4)}


def _cached(folder: Path, recipe: dict, names, make: Callable[[], Dict[str, list]], echo) -> Dict[str, Path]:
    """The split files in ``folder``; made by ``make()`` when one is missing or ``recipe`` changed."""
    paths = {name: folder / f"{name}.xyz" for name in names}
    info_path = folder / "info.json"
    if info_path.is_file() and all(p.is_file() for p in paths.values()):
        if json.loads(info_path.read_text()).get("recipe") == recipe:
            return paths
    echo(f"making {folder.name} reference data in {folder} ...")
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    splits, timings = make()
    for name, frames in splits.items():
        write_frames(frames, paths[name])
    timings.update(total_wall_s=time.perf_counter() - started_wall, total_cpu_s=time.process_time() - started_cpu)
    info = {"recipe": recipe, "frames": {name: len(frames) for name, frames in splits.items()}, "timings": timings}
    info_path.write_text(json.dumps(info, indent=1))
    echo(f"{folder.name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return paths


def _split(frames: list, recipe: dict, seed: int) -> Dict[str, list]:
    order = np.random.default_rng(seed + 1).permutation(len(frames))
    out, start = {}, 0
    for name in ("train", "val", "test"):
        out[name] = [frames[k] for k in order[start : start + recipe[name]]]
        start += recipe[name]
    return out


def ethanol_set(quick: bool = False, echo: Callable[[str], None] = print) -> Dict[str, Path]:
    """Ethanol from xTB Langevin MD at 500 K: ``{"train", "train_small", "val", "test"}`` extxyz paths.

    ``train_small`` is the first ``small_train`` frames of ``train`` (200 of 1,000).
    """
    recipe = ETHANOL["quick" if quick else "full"]

    def make():
        started = time.perf_counter()
        frames = sample_configurations("CH3CH2OH", recipe["burn_in"] + recipe["frames"], temperature=recipe["temperature"],
                                       stride=recipe["stride"], timestep=recipe["timestep_fs"], seed=recipe["seed"])
        frames = frames[recipe["burn_in"]:]
        splits = _split(frames, recipe, recipe["seed"])
        splits["train_small"] = splits["train"][: recipe["small_train"]]
        return splits, {"xtb_md_and_labels_s": time.perf_counter() - started}

    folder = DATA / ("quick" if quick else "") / "ethanol"
    return _cached(folder, recipe, ("train", "train_small", "val", "test"), make, echo)


def water_cluster_geometries(molecules: int, frames: int, equilibration_ps: float, interval_ps: float,
                             timestep_fs: float, temperature: float, restraint_radius: float,
                             restraint_k: float, seed: int, **_) -> list:
    """Positions (Å) of a non-periodic cluster of flexible TIP3P waters from OpenMM Langevin MD.

    Molecules start on a 3.1 Å cubic lattice (liquid density) around the origin, randomly
    oriented; a flat-bottom harmonic restraint (``restraint_k`` kJ/mol/Å² beyond
    ``restraint_radius`` Å from the origin) on the oxygens keeps the cluster together. The
    Reference platform makes the trajectory a function of ``seed`` alone.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as unit
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    water = molecule("H2O")  # O, H, H
    centred = water.positions - water.get_center_of_mass()
    axis = np.arange(-4, 5) * 3.1
    grid = np.array([(i, j, k) for i in axis for j in axis for k in axis])
    sites = grid[np.argsort(np.linalg.norm(grid, axis=1) + 1e-6 * rng.random(len(grid)))[:molecules]]
    rotations = Rotation.random(molecules, random_state=rng).as_matrix()
    start = np.concatenate([centred @ r.T + s for r, s in zip(rotations, sites)])

    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(molecules):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        topology.addBond(o, topology.addAtom("H1", hydrogen, residue))
        topology.addBond(o, topology.addAtom("H2", hydrogen, residue))
    system = app.ForceField("tip3p.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None,
                                                      rigidWater=False)
    restraint = openmm.CustomExternalForce("0.5*k*step(r-R)*(r-R)^2; r=sqrt(x*x+y*y+z*z)")
    restraint.addGlobalParameter("k", restraint_k * 100.0)  # kJ/mol/Å² -> kJ/mol/nm²
    restraint.addGlobalParameter("R", restraint_radius / 10.0)
    for atom in topology.atoms():
        if atom.element is oxygen:
            restraint.addParticle(atom.index, [])
    system.addForce(restraint)
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1.0 / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed + 1)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(start * 0.1)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed + 2)
    per_ps = round(1000.0 / timestep_fs)
    simulation.step(round(equilibration_ps * per_ps))
    out = []
    for _ in range(frames):
        simulation.step(round(interval_ps * per_ps))
        positions = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        out.append(np.asarray(positions) - np.asarray(positions).mean(axis=0))
    return out


def water_set(quick: bool = False, echo: Callable[[str], None] = print) -> Dict[str, Path]:
    """32-water clusters, classical MD geometries with xTB labels: ``{"train", "val", "test"}`` extxyz paths."""
    from ase import Atoms

    recipe = WATER["quick" if quick else "full"]

    def make():
        started = time.perf_counter()
        geometries = water_cluster_geometries(**recipe)
        sampled = time.perf_counter()
        frames = [labelled(Atoms(["O", "H", "H"] * recipe["molecules"], positions=x), None) for x in geometries]
        labelled_s = time.perf_counter() - sampled
        echo(f"water: {len(frames)} xTB single points on {3 * recipe['molecules']} atoms took {labelled_s:.0f} s "
             f"({labelled_s / len(frames):.2f} s each)")
        return _split(frames, recipe, recipe["seed"]), {"classical_md_s": sampled - started, "xtb_labels_s": labelled_s}

    folder = DATA / ("quick" if quick else "") / f"water{recipe['molecules']}"
    return _cached(folder, recipe, SPLIT_NAMES, make, echo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sets and 2 epochs: a smoke run")
    parser.add_argument("--data-only", action="store_true", help="make (or find) the reference data and stop")
    args = parser.parse_args()
    for name, paths in (("ethanol", ethanol_set(args.quick)), ("water", water_set(args.quick))):
        print(name, {k: str(v) for k, v in paths.items()})


if __name__ == "__main__":
    main()
