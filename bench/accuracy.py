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

On each set (ethanol with 200 and with 1,000 training frames) it trains our default model
(``regnn_ff.train.train``: package defaults, species from the data, ``--set`` overrides) and MACE
at ``mace_peer.py``'s width (MACE's own trainer, ``mace_train.py`` in the MACE environment) with
the same splits, epochs, batch size 8, loss weights energy 1 : forces 10, float32, EMA 0.99, seed
0, our fitted E0s and 2 threads, each model in its own process; then prints and writes
(``bench/results/accuracy.json``, ``.csv``) the test errors, training CPU seconds, parameters and
ms per energy + forces call on a 192-atom water box, a Pareto plot (``accuracy_pareto.png``) and
the validation force MAE against training CPU seconds (``accuracy_curves.png``). Finished rows are
cached in ``bench/results/accuracy-rows/`` (``--force`` redoes them); our rows are keyed by a
hash of the imported package's source, so a changed model is retrained and MACE's rows are reused.
``speed.py`` calls :func:`demo_accuracy` (the bench width on the demo's data) for its table.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import resource
import subprocess
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

#: The recipes. ``quick`` is a tiny set of the same kind for smoke runs (``--quick``). Training sizes
#: are multiples of the batch size (8): MACE's loader drops an incomplete last batch, ours does not.
ETHANOL = {"full": dict(frames=1700, burn_in=20, stride=40, timestep_fs=0.5, temperature=500.0, seed=0,
                        train=1000, small_train=200, val=100, test=500),
           "quick": dict(frames=60, burn_in=5, stride=40, timestep_fs=0.5, temperature=500.0, seed=0,
                         train=32, small_train=16, val=8, test=16)}
WATER = {"full": dict(molecules=32, frames=260, equilibration_ps=20.0, interval_ps=1.0, timestep_fs=0.5,
                      temperature=330.0, restraint_radius=6.5, restraint_k=5.0, seed=0, train=160, val=20, test=80),
         "quick": dict(molecules=32, frames=24, equilibration_ps=2.0, interval_ps=1.0, timestep_fs=0.5,
                       temperature=330.0, restraint_radius=6.5, restraint_k=5.0, seed=0, train=16, val=4, test=4)}


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


# --------------------------------------------------------------------------------------------------
# Training and evaluating both models, each in its own process

RESULTS = HERE / "results"
RUNS = RESULTS / "accuracy-runs"
ROWS = RESULTS / "accuracy-rows"
REPO = HERE.parent

#: What both trainings share (the protocol); each code keeps its own optimiser defaults otherwise.
COMMON = {"batch_size": 8, "energy_weight": 1.0, "forces_weight": 10.0, "ema_decay": 0.99, "seed": 0,
          "dtype": "float32", "threads": 2, "omp_wait_policy": "PASSIVE"}
#: MACE at bench/mace_peer.py's width, trained by MACE's own trainer (mace_run_train).
MACE_WIDTH = ["--model=MACE", "--hidden_irreps=32x0e+32x1o", "--max_ell=2", "--correlation=3",
              "--num_interactions=2", "--r_max=5.0", "--MLP_irreps=16x0e"]


def code_fingerprint() -> str:
    """A hash of the imported package's source (committed or not): our rows are redone when it changes."""
    import regnn_ff

    root = Path(regnn_ff.__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _hash(data) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def mace_e0s(train_path: Path) -> Dict[int, float]:
    """The E0s our trainer fits on these training frames (least squares, minimum norm), by atomic number."""
    from ase.data import atomic_numbers

    from regnn_ff.data.datasets import read_frames, species_in
    from regnn_ff.train.statistics import reference_energies

    frames = read_frames(train_path)
    species = species_in(frames)
    return {atomic_numbers[s]: float(e) for s, e in zip(species, reference_energies(frames, species))}


def _run_child(cmd: list, log_path: Path, threads: int, cwd: Path) -> Dict[str, float]:
    """Run ``cmd`` with ``threads`` OpenMP/MKL threads; its CPU seconds (all threads) and wall seconds.

    Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, for both codes): on a
    shared machine a spinning thread whose partner is descheduled burns CPU that does no work (seen
    here under a load of 8 on 2 cores: MACE epochs at 7x the CPU and 5x the wall time of the same
    epochs with passive waiting), so CPU seconds and ms per call would measure the load, not the code.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_WAIT_POLICY=COMMON["omp_wait_policy"])
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... failed (exit {process.returncode}); "
                           f"log {log_path}:\n{tail}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - start}


def _errors(test_path: Path, energies, forces) -> Dict[str, float]:
    """Test MAE/RMSE: energy per atom (meV/atom; also with the mean error removed), forces (meV/Å)."""
    import ase.io

    frames = ase.io.read(str(test_path), index=":")
    e_err = np.array([(e - a.get_potential_energy()) / len(a) for e, a in zip(energies, frames)]) * 1e3
    f_err = np.concatenate([(np.asarray(f) - a.get_forces()).ravel() for f, a in zip(forces, frames)]) * 1e3
    return {"energy_mae": float(np.abs(e_err).mean()),
            "energy_mae_offset_removed": float(np.abs(e_err - e_err.mean()).mean()),
            "energy_offset": float(e_err.mean()), "energy_rmse": float(np.sqrt((e_err**2).mean())),
            "forces_mae": float(np.abs(f_err).mean()), "forces_rmse": float(np.sqrt((f_err**2).mean())),
            "test_frames": len(frames)}


def _box_file() -> Path:
    import ase.io

    path = RUNS / "water_box_192.xyz"
    if not path.is_file():
        RUNS.mkdir(parents=True, exist_ok=True)
        ase.io.write(str(path), water_box(64), format="extxyz")
    return path


def train_mace(job: dict, run_dir: Path, python: Path, repeats: int) -> dict:
    """MACE's own trainer in the MACE venv, then test predictions and timing in a fresh process."""
    paths = job["paths"]
    e0s = mace_e0s(paths["train"])
    args = ["--name=mace", f"--seed={COMMON['seed']}", "--device=cpu", f"--default_dtype={COMMON['dtype']}",
            f"--train_file={paths['train']}", f"--valid_file={paths['val']}", f"--test_file={paths['test']}",
            "--energy_key=energy", "--forces_key=forces", f"--E0s={e0s}", *MACE_WIDTH,
            f"--batch_size={COMMON['batch_size']}", f"--max_num_epochs={job['epochs']}", "--loss=weighted",
            f"--energy_weight={COMMON['energy_weight']}", f"--forces_weight={COMMON['forces_weight']}",
            "--ema", f"--ema_decay={COMMON['ema_decay']}", "--eval_interval=1", "--error_table=PerAtomMAE",
            "--plot=False"]
    script = HERE / "mace_train.py"
    usage = _run_child([python, script, "train", run_dir, f"--threads={COMMON['threads']}", "--", *args],
                       run_dir / "train.log", COMMON["threads"], run_dir)
    curve = []
    for line in (run_dir / "results" / f"mace_run-{COMMON['seed']}_train.txt").read_text().splitlines():
        record = json.loads(line)
        if record.get("mode") == "eval":
            epoch = 0 if record["epoch"] is None else int(record["epoch"]) + 1  # MACE counts from 0
            curve.append({"epoch": epoch, "cpu_s": record["cpu_s"], "wall_s": record["wall_s"],
                          "val_forces_mae": record["mae_f"] * 1e3})
    out = run_dir / "test.json"
    _run_child([python, script, "eval", run_dir / "mace.model", paths["test"], _box_file(), out,
                f"--threads={COMMON['threads']}", f"--repeats={repeats}"], run_dir / "eval.log", COMMON["threads"], run_dir)
    result = json.loads(out.read_text())
    return {"curve": curve, "child_cpu_s": usage["cpu_s"], "child_wall_s": usage["wall_s"], "e0s": e0s,
            "predictions": result, "code": f"mace-torch {result['mace_version']}", "mace_args": args}


def our_config(job: dict, run_dir: Path) -> dict:
    """The TrainConfig (as a dict) of our run: package defaults except the shared protocol and ``--set``."""
    from regnn_ff.train.config import apply_overrides

    paths = job["paths"]
    base = {"data": {"train": str(paths["train"]), "val": str(paths["val"]), "test": str(paths["test"])},
            "loss": {"energy": COMMON["energy_weight"], "forces": COMMON["forces_weight"]},
            "optim": {"batch_size": COMMON["batch_size"], "max_epochs": job["epochs"], "ema_decay": COMMON["ema_decay"]},
            "seed": COMMON["seed"], "dtype": COMMON["dtype"], "device": "cpu", "run_dir": str(run_dir / "run")}
    return apply_overrides(base, job["overrides"])


def train_ours(job: dict, run_dir: Path, repeats: int) -> dict:
    """``regnn_ff.train.train`` in a child process, then test predictions and timing in a fresh one."""
    spec = run_dir / "config.json"
    spec.write_text(json.dumps({"config": our_config(job, run_dir), "threads": COMMON["threads"],
                                "test": str(job["paths"]["test"]), "box": str(_box_file()), "repeats": repeats}))
    me = Path(__file__).resolve()
    usage = _run_child([sys.executable, me, "--child-train", spec], run_dir / "train.log", COMMON["threads"], run_dir)
    timing = json.loads((run_dir / "timing.json").read_text())
    _run_child([sys.executable, me, "--child-eval", spec], run_dir / "eval.log", COMMON["threads"], run_dir)
    return {"curve": timing["curve"], "child_cpu_s": usage["cpu_s"], "child_wall_s": usage["wall_s"],
            "predictions": json.loads((run_dir / "test.json").read_text()), "code": f"regnn-ff {job['code']}"}


def child_train(spec_path: Path) -> None:
    """In the child: train; record process CPU and wall seconds at the end of every epoch."""
    import csv
    import re

    import torch

    from regnn_ff.train.config import TrainConfig

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(spec["threads"])
    config = TrainConfig.from_dict(spec["config"])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    marks = []

    def echo(line: str) -> None:
        print(line, flush=True)
        if re.match(r"epoch\s+\d+\b", line):
            marks.append((time.process_time() - cpu0, time.perf_counter() - wall0))

    run = train(config, echo=echo)
    with open(run / "metrics.csv") as handle:
        history = list(csv.DictReader(handle))
    if len(marks) != len(history):
        raise RuntimeError(f"saw {len(marks)} epoch lines but metrics.csv has {len(history)} rows")
    curve = [{"epoch": int(row["epoch"]), "cpu_s": cpu, "wall_s": wall, "val_forces_mae": float(row["val_forces_mae"])}
             for row, (cpu, wall) in zip(history, marks)]
    (spec_path.parent / "timing.json").write_text(json.dumps({
        "curve": curve, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
        "torch_threads": torch.get_num_threads()}))


def child_eval(spec_path: Path) -> None:
    """In the child: test predictions and time per call through our ASE calculator (as users run it)."""
    import ase.io
    import torch

    from regnn_ff.calculators import REGNNCalculator

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(spec["threads"])
    checkpoint = Path(spec["config"]["run_dir"]) / "best.ckpt"
    calc = REGNNCalculator(checkpoint)
    energies, forces = [], []
    for atoms in ase.io.read(spec["test"], index=":"):
        atoms.calc = calc
        energies.append(float(atoms.get_potential_energy()))
        forces.append(atoms.get_forces().tolist())
    box = ase.io.read(spec["box"])
    box.calc = calc

    def call():
        box.positions[0, 0] += 1e-6  # a new geometry each call, as in MD
        box.get_forces()

    seconds = time_interleaved({"ours": call}, spec["repeats"])["ours"]
    parameters = sum(p.numel() for p in model_from_checkpoint(checkpoint).parameters())
    (spec_path.parent / "test.json").write_text(json.dumps({
        "energies": energies, "forces": forces, "seconds_per_call": seconds, "box_atoms": len(box),
        "parameters": parameters, "torch_threads": torch.get_num_threads()}))


def jobs_for(args, sets: Dict[str, Dict[str, Path]], code: str) -> list:
    """One job per (set, training size, model): MACE and ours (``--label``, ``--set``)."""
    epochs = {"ethanol": args.epochs_ethanol, "water32": args.epochs_water}
    recipes = {"ethanol": ETHANOL["quick" if args.quick else "full"], "water32": WATER["quick" if args.quick else "full"]}
    jobs = []
    # The cheap rows first: ethanol on 200 frames, water, then ethanol on 1,000 frames.
    order = [("ethanol", "train_small"), ("water32", "train"), ("ethanol", "train")]
    for name, train_name in order:
        if name not in sets:
            continue
        paths = sets[name]
        size = recipes[name]["small_train" if train_name == "train_small" else "train"]
        split = {"train": paths[train_name], "val": paths["val"], "test": paths["test"]}
        context = {"set": name, "recipe": recipes[name], "n_train": size, "epochs": epochs[name], "common": COMMON}
        models = ([("MACE", "MACE", [])] if not args.no_mace else []) + \
            ([("regnn-ff", args.label, list(args.overrides))] if not args.no_ours else [])
        for model, label, overrides in models:
            identity = dict(context, model=model, label=label, overrides=overrides,
                            code=code if model == "regnn-ff" else MACE_WIDTH)
            prefix = "quick-" if args.quick else ""
            jobs.append({"set": name, "n_train": size, "model": model, "label": label, "epochs": epochs[name],
                         "overrides": overrides, "paths": split, "code": code, "context": _hash(context),
                         "key": f"{prefix}{name}-{size}-{label}-{_hash(identity)}"})
    return jobs


def run_job(job: dict, repeats: int, mace_python: Callable[[], Path]) -> dict:
    import shutil

    run_dir = RUNS / job["key"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished earlier attempt
    run_dir.mkdir(parents=True)
    if job["model"] == "MACE":
        out = train_mace(job, run_dir, mace_python(), repeats)
    else:
        out = train_ours(job, run_dir, repeats)
    pred = out.pop("predictions")
    row = {k: job[k] for k in ("set", "n_train", "model", "label", "epochs", "overrides", "key", "context")}
    row.update(_errors(job["paths"]["test"], pred["energies"], pred["forces"]))
    row.update(epochs_run=max(p["epoch"] for p in out["curve"]), train_cpu_s=out["curve"][-1]["cpu_s"],
               train_wall_s=out["curve"][-1]["wall_s"], parameters=pred["parameters"],
               ms_per_call_192=pred["seconds_per_call"] * 1e3, threads=pred["torch_threads"],
               run_dir=str(run_dir.relative_to(REPO)), **out)
    ROWS.mkdir(parents=True, exist_ok=True)
    (ROWS / f"{job['key']}.json").write_text(json.dumps(row, indent=1))
    return row


def collect(jobs: list, code: str, quick: bool) -> list:
    """This run's rows plus every cached row of the same sets/epochs (MACE, or ours at this code)."""
    contexts = {job["context"] for job in jobs}
    keys = {job["key"] for job in jobs}
    rows = []
    for path in sorted(ROWS.glob("*.json")) if ROWS.is_dir() else []:
        row = json.loads(path.read_text())
        if row["key"].startswith("quick-") != quick or row["context"] not in contexts:
            continue
        if row["key"] in keys or row["model"] == "MACE" or row.get("code") == f"regnn-ff {code}":
            rows.append(row)
    order = {"ethanol": 0, "water32": 1}
    return sorted(rows, key=lambda r: (order.get(r["set"], 9), r["n_train"], r["model"] != "MACE", r["label"]))


COLUMNS = [("set", "set", "{}"), ("n_train", "train frames", "{}"), ("label", "model", "{}"), ("epochs_run", "epochs", "{}"),
           ("energy_mae", "test E MAE (meV/atom)", "{:.2f}"), ("energy_mae_offset_removed", "E MAE, offset removed", "{:.2f}"),
           ("forces_mae", "test F MAE (meV/Å)", "{:.1f}"), ("train_cpu_s", "training CPU (s)", "{:.0f}"),
           ("parameters", "parameters", "{}"), ("ms_per_call_192", "ms/call (192 atoms)", "{:.1f}")]


def table(rows: list) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def write_outputs(rows: list, stem: str, meta: dict) -> None:
    import csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    flat = [k for k in rows[0] if k not in ("curve", "e0s", "mace_args")] if rows else []
    with open(RESULTS / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=flat, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()})
    if rows:
        plot(rows, stem)


def plot(rows: list, stem: str) -> None:
    """``{stem}_pareto.png`` (test force MAE vs ms/call; colour = model, marker = set and training
    size) and ``{stem}_curves.png`` (validation force MAE vs cumulative training CPU seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    labels = sorted({r["label"] for r in rows}, key=lambda label: (label != "MACE", label))
    palette = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
    colour = {label: ("black" if label == "MACE" else palette[k % len(palette)]) for k, label in enumerate(labels)}
    groups = list(dict.fromkeys(f"{r['set']}, {r['n_train']} train" for r in rows))
    marker = {group: "os^Dvp"[k % 6] for k, group in enumerate(groups)}

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in rows:
        group = f"{row['set']}, {row['n_train']} train"
        ax.scatter(row["ms_per_call_192"], row["forces_mae"], color=colour[row["label"]], marker=marker[group], s=60)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ms per energy + forces call, 192-atom water box")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title("Accuracy vs speed (lower left is better)")
    handles = [Line2D([], [], color=colour[label], marker="o", linestyle="", label=label) for label in labels]
    handles += [Line2D([], [], color="grey", marker=marker[g], linestyle="", label=g) for g in groups]
    ax.legend(handles=handles, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}_pareto.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for row in rows:
            if f"{row['set']}, {row['n_train']} train" == group:
                points = [p for p in row["curve"] if p["epoch"] > 0]
                ax.plot([p["cpu_s"] for p in points], [p["val_forces_mae"] for p in points],
                        color=colour[row["label"]], label=row["label"])
        ax.set_yscale("log")
        ax.set_xlabel("training CPU seconds (process, all threads)")
        ax.set_ylabel("validation force MAE (meV/Å)")
        ax.set_title(group)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}_curves.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sets and 2 epochs: a smoke run")
    parser.add_argument("--data-only", action="store_true", help="make (or find) the reference data and stop")
    parser.add_argument("--epochs-ethanol", type=int, default=None, help="epochs on ethanol (default 60; --quick 2)")
    parser.add_argument("--epochs-water", type=int, default=None, help="epochs on water (default 30; --quick 2)")
    parser.add_argument("--sets", nargs="+", choices=["ethanol", "water"], default=["ethanol", "water"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override our TrainConfig, e.g. model.channels=64 (repeatable)")
    parser.add_argument("--label", default="regnn-ff", help="name of our row (use one per --set variant)")
    parser.add_argument("--no-mace", action="store_true", help="skip MACE (its cached rows are still shown)")
    parser.add_argument("--no-ours", action="store_true", help="skip our model")
    parser.add_argument("--force", action="store_true", help="redo rows that are cached in bench/results")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per model (default 10; --quick 3)")
    parser.add_argument("--mace-python", type=Path, help="Python of an existing MACE environment")
    parser.add_argument("--child-train", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-eval", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_train:
        return child_train(args.child_train)
    if args.child_eval:
        return child_eval(args.child_eval)
    if args.label == "MACE":
        parser.error("--label MACE is taken by the peer")
    args.epochs_ethanol = args.epochs_ethanol or (2 if args.quick else 60)
    args.epochs_water = args.epochs_water or (2 if args.quick else 30)
    repeats = args.repeats or (3 if args.quick else 10)

    started_wall, started_cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    sets = {}
    if "ethanol" in args.sets:
        sets["ethanol"] = ethanol_set(args.quick)
    if "water" in args.sets:
        sets["water32"] = water_set(args.quick)
    if args.data_only:
        for name, paths in sets.items():
            print(name, {k: str(v) for k, v in paths.items()})
        return

    def mace_python() -> Path:
        if args.mace_python:
            return args.mace_python
        from speed import mace_python as make  # speed.py imports this module: import it late

        return make()

    code = code_fingerprint()
    jobs = jobs_for(args, sets, code)
    RUNS.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        cached = ROWS / f"{job['key']}.json"
        with open(RUNS / f".{job['key']}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the same row running in another invocation finishes first
            if cached.is_file() and not args.force:
                print(f"{job['set']}, {job['n_train']} frames, {job['label']}: cached ({cached.relative_to(REPO)})")
                continue
            print(f"{job['set']}, {job['n_train']} frames, {job['label']}: training {job['epochs']} epochs ...", flush=True)
            row = run_job(job, repeats, mace_python)
        print(f"  test F MAE {row['forces_mae']:.1f} meV/Å, E MAE {row['energy_mae']:.2f} meV/atom; "
              f"training CPU {row['train_cpu_s']:.0f} s; {row['ms_per_call_192']:.1f} ms/call", flush=True)
    rows = collect(jobs, code, args.quick)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    meta = {"common": COMMON, "mace_width": MACE_WIDTH, "epochs": {"ethanol": args.epochs_ethanol, "water32": args.epochs_water},
            "code": code, "this_run_wall_s": time.perf_counter() - started_wall,
            "this_run_children_cpu_s": children.ru_utime + children.ru_stime - started_cpu.ru_utime - started_cpu.ru_stime,
            "data": {name: json.loads((paths["train"].parent / "info.json").read_text()) for name, paths in sets.items()}}
    stem = "accuracy-quick" if args.quick else "accuracy"
    write_outputs(rows, stem, meta)
    print()
    print(table(rows))
    print(f"\nwrote {RESULTS.relative_to(REPO)}/{stem}.json, .csv, {stem}_pareto.png, {stem}_curves.png; "
          f"this run {meta['this_run_wall_s']:.0f} s wall, {meta['this_run_children_cpu_s']:.0f} s CPU in training processes")


if __name__ == "__main__":
    main()
