"""Every kind of bad input we know of, each held to a one-line error that names the problem, a
warning, or the correct result: the ASE calculator, the core, model files, OpenMM, openmm-ml, the
training config and run directory, and the command line.

One table per boundary. OpenMM and openmm-ml cases run in one child process (this file run as a
script) so that a crash fails those cases instead of killing the test session; command-line cases
run the real ``regnn`` console script, several at a time.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import stat
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from regnn_ff import RelaxedPotential
from regnn_ff.calculators import REGNNCalculator
from regnn_ff.data.label import sample_configurations, write_frames
from regnn_ff.evaluate import evaluate
from regnn_ff.export import METADATA_FILE, load_model, save_scripted
from regnn_ff.train.checkpoint import save_checkpoint
from regnn_ff.validate import ExtrapolationWarning

#: The smallest model the config allows: built and exported once per session.
TINY = dict(species=["H", "O"], r_max=3.0, channels=4, num_layers=1, radial_hidden=8, readout_hidden=4,
            num_basis=4, l_max=1, l_relaxed=1, field_irreps="1x1o", avg_num_neighbors=2.0)
#: What the tiny model "saw" in training (as a checkpoint's data_range).
RANGE = {"field_max": 0.5, "energy_per_atom": [-6.0, -2.0], "forces_rms": 1.0}
KCAL_PER_EV = 23.0605


def _frames(scale: float = 1.0, field: bool = True):
    """Six labelled water molecules (eV, eV/Å; times ``scale``), with a field in info if asked."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(6):
        atoms = molecule("H2O")
        atoms.positions += rng.normal(scale=0.05, size=(3, 3))
        atoms.calc = SinglePointCalculator(atoms, energy=scale * (-12.0 + 0.1 * k), forces=scale * rng.normal(size=(3, 3)))
        if field:
            atoms.info["field"] = [0.0, 0.0, 0.1 * k]
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny model's files, built once; the child processes (OpenMM cases, the command line) start
    here, so that they run while the in-process cases do."""
    d = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    model = RelaxedPotential(TINY).double().eval()
    strict = RelaxedPotential(dict(TINY, field_irreps=None, l_relaxed=None)).double().eval()
    save_scripted(model, d / "model.pt", RANGE)
    save_scripted(strict, d / "strict.pt", RANGE)
    state = {"model_config": model.config.to_dict(), "model_state": model.state_dict(), "ema_state": None,
             "dtype": "float64", "epoch": 3, "best_val": 0.5, "data_range": RANGE}
    save_checkpoint(state, d / "model.ckpt")
    save_checkpoint(dict(state, model_config=dict(model.config.to_dict(), channels=8)), d / "mismatch.ckpt")
    write_frames(_frames(), d / "data.xyz")
    write_frames(_frames(KCAL_PER_EV), d / "kcal.xyz")
    (d / "notes.txt").write_text("not a model")
    (d / "a_file").write_text("")
    extra = {METADATA_FILE: ""}
    scripted = torch.jit.load(str(d / "model.pt"), _extra_files=extra)
    out = SimpleNamespace(dir=d, model=model, strict=strict, pt=d / "model.pt", strict_pt=d / "strict.pt",
                          ckpt=d / "model.ckpt", loaded=load_model(d / "model.pt"), scripted=scripted,
                          meta=json.loads(extra[METADATA_FILE]))
    with ThreadPoolExecutor(max_workers=4) as pool:  # each child imports torch (~0.7 GB)
        lock = _start_children(out, pool)
        try:
            yield out
        finally:
            pool.shutdown(wait=True)
            lock.release()


def _start_children(files, pool):
    """Submit the OpenMM child and every command-line case to ``pool``; returns the run-directory
    lock the 'locked' case must meet (as a live trainer would hold it)."""
    from regnn_ff.train.run_dir import claim_run_dir

    torch.manual_seed(0)
    big = files.dir / "big_r_max.pt"
    save_scripted(RelaxedPotential(dict(TINY, r_max=1000.0)).double().eval(), big)
    _started_run(files, "resumed_cli")
    _config(files, run_dir=str(files.dir / "locked")).to_yaml(files.dir / "locked.yaml")
    lock = claim_run_dir(files.dir / "locked")
    files.openmm = pool.submit(subprocess.run, [sys.executable, __file__, "--openmm-cases", str(files.pt), str(files.strict_pt),
                                                str(big)], capture_output=True, text=True, timeout=600)
    names = dict(dir=files.dir, pt=files.pt, ckpt=files.ckpt)
    files.cli = {case[0]: pool.submit(subprocess.run, [_regnn_exe(), *[a.format(**names) for a in case[1]]], cwd=files.dir,
                                      capture_output=True, text=True, timeout=600) for case in CLI}
    return lock


def _edited(files, name: str, edit) -> Path:
    """A copy of the model file whose metadata went through ``edit`` (a dict -> dict or str)."""
    meta = edit(dict(files.meta))
    path = files.dir / name
    torch.jit.save(files.scripted, str(path), _extra_files={METADATA_FILE: meta if isinstance(meta, str) else json.dumps(meta)})
    return path


def _without(meta, key):
    return {k: v for k, v in meta.items() if k != key}


def _edit_weights(files) -> Path:
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(files.pt), _extra_files=extra)
    with torch.no_grad():
        module.representation.embedding.add_(0.1)
    path = files.dir / "weights.pt"
    torch.jit.save(module, str(path), _extra_files=extra)
    return path


def _calc(files, **kwargs):
    """The calculator on the exported file (loaded once: each case here is about the calculator)."""
    return REGNNCalculator(files.loaded if "dtype" not in kwargs and "device" not in kwargs else files.pt, **kwargs)


def _energy(files, atoms, **kwargs):
    atoms = atoms.copy()
    atoms.calc = _calc(files, **kwargs)
    return atoms.get_potential_energy()


def _water(shift=None, **cell):
    atoms = molecule("H2O", **cell)
    if shift is not None:
        atoms.positions[shift[0]] = atoms.positions[shift[1]]
    return atoms


def _periodic(cell, pbc=True):
    return Atoms("OHH", positions=molecule("H2O").positions + 1.0, cell=cell, pbc=pbc)


# ---- in-process cases: (id, action, exception, message pattern) ---------------------------------
ERRORS = [
    # ASE calculator and the core's graph building
    ("ase-field-shape", lambda f: _calc(f, field=[0.1, 0.2]), ValueError, r"field must have shape \(3,\) or \(1, 3\) for field irreps 1x1o; got \(2,\)"),
    ("ase-field-string", lambda f: _calc(f, field="0 0 1"), ValueError, r"field must be numbers .* got a str '0 0 1'"),
    ("ase-field-nan", lambda f: _calc(f, field=[np.nan, 0, 0]), ValueError, "field has non-finite values"),
    ("ase-field-objects", lambda f: _calc(f, field=[None, "a", 1]), ValueError, "field must be numbers"),
    ("ase-field-strict", lambda f: REGNNCalculator(f.strict_pt, field=[0, 0, 1]), ValueError, "this model has no field input"),
    ("ase-set-typo", lambda f: _calc(f).set(feild=[0, 0, 1]), ValueError, r"unknown parameter\(s\) \['feild'\]"),
    ("ase-init-typo", lambda f: _calc(f, feild=[0, 0, 1]), ValueError, r"unknown parameter\(s\) \['feild'\]"),
    ("ase-unknown-element", lambda f: _energy(f, molecule("CH4")), ValueError, r"atom 0: element 'C' is not one of the model's species \['H', 'O'\]"),
    ("ase-overlap", lambda f: _energy(f, _water(shift=(1, 0))), ValueError, r"atoms 0 and 1 overlap \(distance 0.00e\+00 Å\)"),
    ("ase-nan-position", lambda f: _energy(f, Atoms("OH", positions=[[0, 0, 0], [np.nan, 0, 0]])), ValueError, "atom 1 has a non-finite position"),
    ("ase-zero-volume-cell", lambda f: _energy(f, _periodic([[3, 0, 0], [3, 0, 0], [0, 0, 3]])), ValueError, r"periodic cell vectors \[0, 1, 2\] are linearly dependent"),
    ("ase-flat-cell-mixed-pbc", lambda f: _energy(f, _periodic([[3, 0, 0], [3, 0, 0], [0, 0, 0]], [True, True, False])), ValueError, r"periodic cell vectors \[0, 1\] are linearly dependent"),
    ("ase-zero-length-periodic", lambda f: _energy(f, _periodic([[3, 0, 0], [0, 3, 0], [0, 0, 0]])), ValueError, "periodic along cell vector 2, which has zero length"),
    ("ase-device-typo", lambda f: _calc(f, device="gpu"), ValueError, "device 'gpu' is not a torch device"),
    ("ase-precision-typo", lambda f: _calc(f, dtype="half"), ValueError, "precision 'half' is not one of"),
    ("ase-model-missing", lambda f: REGNNCalculator(f.dir / "nope.pt"), FileNotFoundError, "nope.pt: no such model file"),
    ("ase-model-directory", lambda f: REGNNCalculator(f.dir), ValueError, "is a directory, not a model file"),
    ("ase-model-wrong-type", lambda f: REGNNCalculator(42), TypeError, "model must be a file path or a RelaxedPotential, got int"),
    ("huge-r-max-periodic", lambda f: RelaxedPotential(dict(TINY, r_max=1000.0)).compute(_periodic(np.eye(3) * 3.0)), ValueError, r"r_max 1000.0 Å in this periodic cell gives about .* neighbour pairs"),
    # the core's compute()
    ("compute-unknown-property", lambda f: f.model.compute(_water(), properties=["energy", "charges"]), ValueError, "unknown property 'charges'"),
    ("compute-properties-string", lambda f: f.model.compute(_water(), properties="forces"), ValueError, r"properties must be a list of names, e.g. \['forces'\]"),
    ("compute-stress-molecule", lambda f: f.model.compute(_water(), properties=["stress"]), ValueError, "stress needs a periodic cell with non-zero volume; structure 0"),
    ("compute-dipole-strict", lambda f: f.strict.compute(_water(), properties=["dipole"]), ValueError, "dipole needs an E-field input"),
    ("compute-not-atoms", lambda f: f.model.compute(["H2O"]), TypeError, "structure 0 is a str, expected ase.Atoms"),
    ("compute-empty-atoms", lambda f: f.model.compute(Atoms()), ValueError, "structure 0 has no atoms"),
    ("compute-field-per-structure", lambda f: f.model.compute([_water(), _water()], field=[[0, 0, 1]] * 3), ValueError, r"got \(3, 3\)"),
    # model files
    ("file-not-torchscript", lambda f: load_model(f.dir / "notes.txt"), ValueError, "notes.txt: not a TorchScript model file"),
    ("file-plain-torchscript", lambda f: load_model(_plain_torchscript(f)), ValueError, "plain.pt: a TorchScript file, but not a regnn-ff model"),
    ("file-invalid-json", lambda f: load_model(_edited(f, "json.pt", lambda m: "{species: [H")), ValueError, r"json.pt: its regnn_ff.json is not valid JSON"),
    ("file-json-not-object", lambda f: load_model(_edited(f, "list.pt", lambda m: [1, 2])), ValueError, "list.pt: its regnn_ff.json is not a JSON object"),
    ("file-future-format", lambda f: load_model(_edited(f, "future.pt", lambda m: dict(m, format_version=99))), ValueError, r"future.pt: regnn-ff model format 99 is not supported"),
    ("file-species-swapped", lambda f: load_model(_edited(f, "swap.pt", lambda m: dict(m, species=["O", "H"]))), ValueError, r"swap.pt: metadata or weights differ from the checksum written at export"),
    ("file-r-max-edited-no-checksum", lambda f: load_model(_edited(f, "rmax.pt", lambda m: dict(_without(m, "checksum"), r_max=5.0))), ValueError, r"rmax.pt: metadata r_max 5.0 Å differs from the model's own 3.0 Å"),
    ("file-species-edited-no-checksum", lambda f: load_model(_edited(f, "swap2.pt", lambda m: dict(_without(m, "checksum"), species=["O", "H"]))), ValueError, r"swap2.pt: metadata species \['O', 'H'\] differ from the model's own \['H', 'O'\]"),
    ("file-field-irreps-edited", lambda f: load_model(_edited(f, "field.pt", lambda m: dict(_without(m, "checksum"), field_irreps=None))), ValueError, "field.pt: metadata field_irreps None do not fit the model's field input of size 3"),
    ("file-dtype-edited", lambda f: load_model(_edited(f, "dtype.pt", lambda m: dict(_without(m, "checksum"), dtype="float32"))), ValueError, "dtype.pt: metadata dtype float32 differs from the model's weights"),
    ("file-species-missing", lambda f: load_model(_edited(f, "nospecies.pt", lambda m: _without(m, "species"))), ValueError, "nospecies.pt: its regnn_ff.json has no 'species' entry"),
    ("file-weights-edited", lambda f: load_model(_edit_weights(f)), ValueError, "weights.pt: metadata or weights differ from the checksum"),
    ("file-missing", lambda f: load_model(f.dir / "missing.pt"), FileNotFoundError, "missing.pt: no such model file"),
    ("ckpt-not-a-checkpoint", lambda f: load_model(_copy(f.dir / "notes.txt", f.dir / "notes.ckpt")), ValueError, "notes.ckpt: not a regnn-ff checkpoint"),
    ("ckpt-weights-do-not-fit", lambda f: load_model(f.dir / "mismatch.ckpt"), ValueError, "mismatch.ckpt: the stored weights do not fit its model_config"),
    ("ckpt-missing", lambda f: load_model(f.dir / "missing.ckpt"), FileNotFoundError, "missing.ckpt: no such model file"),
    # training config (YAML) and run directory
    ("yaml-string-for-number", lambda f: _config(f, optim={"lr": "fast"}), ValueError, r"train.yaml: optim: 'lr' must be a number, got 'fast' \(str\)"),
    ("yaml-string-for-integer", lambda f: _config(f, optim={"batch_size": "8"}), ValueError, r"optim: 'batch_size' must be an integer, got '8'"),
    ("yaml-bool-for-integer", lambda f: _config(f, seed=True), ValueError, r"'seed' must be an integer, got True"),
    ("yaml-model-string-for-number", lambda f: _config(f, model={"r_max": "far"}), ValueError, r"model: 'r_max' must be a number, got 'far'"),
    ("yaml-model-float-for-integer", lambda f: _config(f, model={"channels": 4.5}), ValueError, r"model: 'channels' must be an integer, got 4.5"),
    ("yaml-keys-not-mapping", lambda f: _config(f, data={"keys": "energy"}), ValueError, r"data: 'keys' must be a mapping"),
    ("yaml-unknown-key", lambda f: _config(f, optim={"learning_rate": 0.1}), ValueError, r"unknown key 'learning_rate'"),
    ("yaml-set-without-equals", lambda f: _config(f, overrides=["optim.lr"]), ValueError, "--set expects key=value, got 'optim.lr'"),
    ("yaml-bad-dtype", lambda f: _config(f, dtype="float16"), ValueError, "'dtype' must be float32 or float64"),
    ("train-device-cuda-without-gpu", lambda f: _train(f, device="cuda"), ValueError, "device 'cuda' was asked for, but torch finds no CUDA GPU"),
    ("train-run-dir-under-a-file", lambda f: _train(f, run_dir=str(f.dir / "a_file" / "run")), NotADirectoryError, r"a_file is a file, not a directory"),
    ("train-resume-changed-model", lambda f: _resume_changed(f), ValueError, r"cannot resume .* with a different model: model.channels \(4 -> 8\)"),
    ("train-data-missing", lambda f: _train(f, data={"train": str(f.dir / "none.xyz")}), FileNotFoundError, "none.xyz: no such data file"),
    ("evaluate-unknown-key", lambda f: evaluate(f.pt, f.dir / "data.xyz", {"enrgy": "E"}), ValueError, r"--key: unknown label key 'enrgy'"),
    ("label-field-max-nan", lambda f: sample_configurations("H2O", 2, field_max=float("nan")), ValueError, "field_max must be a finite number >= 0"),
    ("write-into-a-directory", lambda f: save_scripted(f.model, f.dir), IsADirectoryError, "is a directory; give a file name"),
    ("write-under-a-file", lambda f: save_scripted(f.model, f.dir / "a_file" / "m.pt"), NotADirectoryError, r"a_file/m.pt: cannot write here, .*a_file is a file"),
]
if torch.cuda.is_available():  # the "no GPU" cases only exist on machines without one
    ERRORS = [case for case in ERRORS if "cuda" not in case[0]]
else:
    ERRORS.append(("ase-device-cuda-without-gpu", lambda f: _calc(f, device="cuda"), ValueError, "device 'cuda' was asked for, but torch finds no CUDA GPU"))


def _plain_torchscript(files) -> Path:
    path = files.dir / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _config(files, overrides=(), **sections):
    """Write a training config (tiny model on data.xyz) with ``sections`` merged in, and load it."""
    from regnn_ff.train import TrainConfig

    config = {"model": {k: v for k, v in TINY.items() if k != "species"},
              "data": {"train": str(files.dir / "data.xyz"), "val_fraction": 0.34, "test_fraction": 0.0},
              "optim": {"max_epochs": 1, "batch_size": 2}, "run_dir": str(files.dir / "run"), "dtype": "float64"}
    for key, value in sections.items():
        config[key] = dict(config[key], **value) if isinstance(value, dict) and key in config else value
    path = files.dir / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return TrainConfig.from_yaml(path, list(overrides))


def _train(files, **sections):
    from regnn_ff.train import train

    return train(_config(files, **sections))


def _started_run(files, name: str) -> Path:
    """A run directory as ``regnn train`` starts it: the config it runs with, in config.yaml."""
    run = files.dir / name
    run.mkdir(exist_ok=True)
    _config(files, run_dir=str(run)).to_yaml(run / "config.yaml")
    return run


def _resume_changed(files):
    from regnn_ff.train import train

    run = _started_run(files, "resumed")
    return train(_config(files, run_dir=str(run), model={"channels": 8}), resume=True)


@pytest.mark.parametrize("case", ERRORS, ids=[case[0] for case in ERRORS])
def test_bad_input_is_a_one_line_error(files, case):
    _, action, kind, pattern = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        with pytest.raises(kind, match=pattern) as info:
            action(files)
    assert "\n" not in str(info.value), str(info.value)


# ---- cases whose answer is a result or a warning, not an error ----------------------------------
def test_field_array_changed_in_place_then_set_gives_the_new_fields_energy(files):
    field = np.zeros(3)
    atoms = _water()
    atoms.calc = _calc(files, field=field)
    first = atoms.get_potential_energy()
    field[2] = 0.3  # a field scan reusing one array
    atoms.calc.set(field=field)
    assert atoms.get_potential_energy() == pytest.approx(_energy(files, _water(), field=[0, 0, 0.3]), rel=1e-12)
    assert atoms.get_potential_energy() != first


def test_atoms_with_the_calculator_attached_pickle_and_reload(files):
    atoms = _water()
    atoms.calc = _calc(files, field=[0.0, 0.1, 0.2])
    energy = atoms.get_potential_energy()
    copy = pickle.loads(pickle.dumps(atoms))
    copy.calc.reset()
    assert copy.get_potential_energy() == pytest.approx(energy, rel=1e-12)


def test_precision_converts_an_exported_file(files):
    single = load_model(files.pt, dtype="single")
    assert single.dtype == torch.float32 and single.metadata["converted_from"] == "float64"
    energy32 = _energy(files, _water(), dtype="float32")
    assert energy32 == pytest.approx(_energy(files, _water()), rel=1e-5)


def test_checkpoint_and_file_carry_the_training_range(files):
    assert load_model(files.ckpt).metadata["data_range"] == RANGE
    assert load_model(files.pt).metadata["data_range"] == RANGE


@pytest.mark.parametrize("field, warned", [([0.0, 0.0, 0.5], False), ([0.0, 0.0, 1e6], True)])
def test_field_beyond_the_training_range_warns(files, field, warned):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _calc(files, field=field)
    messages = [str(w.message) for w in caught if issubclass(w.category, ExtrapolationWarning)]
    assert bool(messages) == warned
    if warned:
        assert "beyond the training data's largest field (0.5 V/Å)" in messages[0]


def test_labels_in_kcal_per_mol_warn_with_a_hint(files):
    with pytest.warns(ExtrapolationWarning, match=r"about 23.06×: labels in kcal/mol\?"):
        evaluate(files.pt, files.dir / "kcal.xyz")


def test_ignored_field_and_dipole_warn(files):
    from regnn_ff.train.trainer import prepare

    with pytest.warns(ExtrapolationWarning, match="carry a 'field', but the model has no field input"):
        evaluate(files.strict_pt, files.dir / "data.xyz")
    config = _config(files, model={"field_irreps": None, "l_relaxed": None}, loss={"dipole": 1.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(config)
    messages = " | ".join(str(w.message) for w in caught)
    assert "the field is ignored" in messages and "loss.dipole > 0, but the model has no E-field input" in messages


def test_yaml_exponent_without_dot_is_a_number(files):
    assert _config(files, optim={"lr": "1e-3"}).optim.lr == 1e-3  # YAML 1.1 reads 1e-3 as a string


def test_files_follow_the_umask(files):
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (files.pt, files.ckpt):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_stale_lock_and_leftovers_of_a_killed_run_are_cleared(files):
    from regnn_ff.train.run_dir import claim_run_dir

    run = files.dir / "killed"
    run.mkdir()
    # A trainer killed while it held the lock and was writing a checkpoint.
    script = ("import fcntl, os, signal, sys; fd = os.open(sys.argv[1] + '/.lock', os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); "
              "open(sys.argv[1] + '/.last.x1y2.tmp.ckpt', 'w').write('half'); os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", script, str(run)])
    assert killed.returncode == -signal.SIGKILL
    lock = claim_run_dir(run)
    try:
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(ValueError, match=rf"killed is in use by another training process \(pid {os.getpid()}\)"):
            claim_run_dir(run)
    finally:
        lock.release()


# ---- OpenMM and openmm-ml, in a child process ---------------------------------------------------
#: (id, expected): "ok" or a regex the error's last line must match. The child runs OPENMM_ACTIONS.
OPENMM = [
    ("create-negative-indices", r"ValueError: atoms\[0\] = -3 is negative"),
    ("create-duplicate-indices", r"ValueError: atoms\[2\] = 1 repeats atoms\[1\]"),
    ("create-fractional-index", r"ValueError: atoms\[1\] = 1.5 is not an integer particle index"),
    ("create-index-beyond-num-particles", r"ValueError: atoms\[2\] = 5 is out of range: the System has 3 particles"),
    ("create-symbols-string", r"ValueError: symbols must be a list of chemical symbols, one per atom, got the string 'OHH'"),
    ("create-unknown-element", r"ValueError: atom 0: element 'C' is not one of the model's species"),
    ("create-indices-symbols-mismatch", r"ValueError: 2 atom indices but 3 symbols"),
    ("create-field-nan", r"ValueError: field has non-finite values"),
    ("create-field-length", r"ValueError: field must have shape \(3,\)"),
    ("create-field-strict", r"ValueError: a field was given, but this model has no field input"),
    ("create-backend-typo", r"ValueError: backend must be one of \('torch', 'python'\), got 'tourch'"),
    ("create-periodic-string", r"ValueError: periodic must be True or False, got 'yes'"),
    ("add-system-smaller-than-topology", r"ValueError: the System has 3 particles but the topology has 6 atoms"),
    ("add-index-beyond-topology", r"ValueError: atoms\[1\] = 9 is out of range: the topology has 6 particles"),
    ("add-negative-index", r"ValueError: atoms\[2\] = -1 is negative"),
    ("add-force-group", r"ValueError: force_group must be an integer from 0 to 31"),
    ("run-torch-too-few-particles", r"ValueError: the System has 3 particles, but the model acts on particle 4"),
    ("run-torch-overlap", r"ValueError: atoms 0 and 1 overlap"),
    ("run-python-overlap", r"atoms 0 and 1 overlap"),
    ("run-torch-nan-field", r"ValueError: the field global parameters are not finite"),
    ("run-python-nan-field", r"the field global parameters are not finite"),
    ("add-huge-r-max-for-the-box", r"ValueError: r_max 1000.0 Å in this periodic box \(\[3.0, 3.0, 3.0\] Å\) gives about"),
    ("run-python-huge-r-max", r"r_max 1000.0 Å in this periodic box"),
    ("run-python-equals-torch", "ok"),
    ("ml-typo-keyword", r"ValueError: MLPotential\('regnn'\): unknown keyword argument\(s\) \['feild'\]"),
    ("ml-unknown-constructor-argument", r"ValueError: MLPotential\('regnn'\): unknown argument\(s\) \['modelpath'\]"),
    ("ml-no-model-path", r"ValueError: MLPotential\('regnn'\) needs modelPath"),
    ("ml-precision-typo", r"ValueError: precision 'quad' is not one of"),
    ("ml-precision-honoured", "ok"),
    ("ml-interpolate-torch", r"ValueError: createMixedSystem\(interpolate=True\) needs backend='python'"),
    ("ml-interpolate-python", "ok"),
]


def _openmm_actions(pt: str, strict_pt: str, big_pt: str):
    """The OpenMM cases: name -> action. An action returns "ok" after checking a correct result
    itself, or raises."""
    import openmm
    from openmm import app
    from openmmml import MLPotential

    from regnn_ff.calculators import add_force, create_force

    water = molecule("H2O")
    model = load_model(pt)  # the cases below are about arguments: load the file once

    def context(force, particles=3, positions=None, box=None):
        system = openmm.System()
        for _ in range(particles):
            system.addParticle(1.0)
        if box is not None:
            system.setDefaultPeriodicBoxVectors(*box)
        system.addForce(force)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions((water.positions if positions is None else positions) / 10.0)
        return ctx

    def energy(ctx):
        return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)

    def topology(waters=2, box=None):
        top = app.Topology()
        top.setPeriodicBoxVectors(box)
        chain = top.addChain()
        for _ in range(waters):
            residue = top.addResidue("HOH", chain)
            o = top.addAtom("O", app.element.oxygen, residue)
            for name in ("H1", "H2"):
                top.addBond(o, top.addAtom(name, app.element.hydrogen, residue))
        return top

    def system(particles):
        out = openmm.System()
        for _ in range(particles):
            out.addParticle(1.0)
        return out

    def periodic_system():
        out = system(6)
        out.setDefaultPeriodicBoxVectors(*box)
        return out

    overlap = water.positions.copy()
    overlap[1] = overlap[0]
    two = np.concatenate([water.positions, water.positions + [3.1, 0.2, 0.0]])

    def nan_field(backend):
        ctx = context(create_force(model, ["O", "H", "H"], backend=backend))
        ctx.setParameter("regnn_Ex", float("nan"))
        return energy(ctx)

    def python_equals_torch():
        field = [0.5, -1.0, 2.0]
        e = [energy(context(create_force(model, ["O", "H", "H"], field=field, backend=b))) for b in ("torch", "python")]
        atoms = water.copy()
        atoms.calc = REGNNCalculator(pt, field=np.array(field) / 10.0)
        reference = atoms.get_potential_energy() * 96.48533212331
        assert abs(e[0] - reference) < 1e-6 * abs(reference) and abs(e[1] - reference) < 1e-6 * abs(reference), (e, reference)
        return "ok"

    def precision_honoured():
        potential = MLPotential("regnn", modelPath=pt)
        pair = Atoms("OHHOHH", positions=two)
        pair.calc = REGNNCalculator(pt)
        reference = pair.get_potential_energy() * 96.48533212331  # the float64 file, kJ/mol
        energies = {}
        for precision in ("single", "double", None):
            ctx = openmm.Context(potential.createSystem(topology(), precision=precision),
                                 openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            ctx.setPositions(two / 10.0)
            energies[precision] = energy(ctx)
        # double is the float64 file as it is; single is the same model rounded to float32.
        assert energies["double"] == energies[None] and abs(energies["double"] - reference) < 1e-7 * abs(reference), (energies, reference)
        assert energies["single"] != energies["double"], energies
        assert abs(energies["single"] - reference) < 1e-5 * abs(reference), (energies, reference)
        return "ok"

    def mixed(**kwargs):
        top = topology()
        mm = app.ForceField("tip3p.xml").createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
        return MLPotential("regnn", modelPath=pt).createMixedSystem(top, mm, [0, 1, 2], **kwargs)

    def interpolate_python():
        ctx = openmm.Context(mixed(interpolate=True, backend="python"), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(two / 10.0)
        ctx.setParameter("lambda_interpolate", 1.0)
        plain = openmm.Context(mixed(), openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        plain.setPositions(two / 10.0)
        assert abs(energy(ctx) - energy(plain)) < 1e-6 * abs(energy(plain)), (energy(ctx), energy(plain))
        return "ok"

    box = np.eye(3) * 0.3  # nm
    return {
        "create-negative-indices": lambda: create_force(model, ["O", "H", "H"], atoms=[-3, -2, -1]),
        "create-duplicate-indices": lambda: create_force(model, ["O", "H", "H"], atoms=[0, 1, 1]),
        "create-fractional-index": lambda: create_force(model, ["O", "H", "H"], atoms=[0, 1.5, 2]),
        "create-index-beyond-num-particles": lambda: create_force(model, ["O", "H", "H"], atoms=[0, 1, 5], num_particles=3),
        "create-symbols-string": lambda: create_force(model, "OHH"),
        "create-unknown-element": lambda: create_force(model, ["C", "H", "H"]),
        "create-indices-symbols-mismatch": lambda: create_force(model, ["O", "H", "H"], atoms=[0, 1]),
        "create-field-nan": lambda: create_force(model, ["O", "H", "H"], field=[np.nan, 0, 0]),
        "create-field-length": lambda: create_force(model, ["O", "H", "H"], field=[1.0, 2.0]),
        "create-field-strict": lambda: create_force(strict_pt, ["O", "H", "H"], field=[0, 0, 1.0]),
        "create-backend-typo": lambda: create_force(model, ["O", "H", "H"], backend="tourch"),
        "create-periodic-string": lambda: create_force(model, ["O", "H", "H"], periodic="yes"),
        "add-system-smaller-than-topology": lambda: add_force(system(3), topology(), model),
        "add-index-beyond-topology": lambda: add_force(system(6), topology(), model, atoms=[0, 9, 2]),
        "add-negative-index": lambda: add_force(system(6), topology(), model, atoms=[0, 1, -1]),
        "add-force-group": lambda: add_force(system(6), topology(), model, force_group=40),
        "run-torch-too-few-particles": lambda: energy(context(create_force(model, ["O", "H", "H"], atoms=[0, 1, 4]))),
        "run-torch-overlap": lambda: energy(context(create_force(model, ["O", "H", "H"]), positions=overlap)),
        "run-python-overlap": lambda: energy(context(create_force(model, ["O", "H", "H"], backend="python"), positions=overlap)),
        "run-torch-nan-field": lambda: nan_field("torch"),
        "run-python-nan-field": lambda: nan_field("python"),
        "add-huge-r-max-for-the-box": lambda: add_force(periodic_system(), topology(box=box), big_pt),
        "run-python-huge-r-max": lambda: energy(context(create_force(big_pt, ["O", "H", "H"], periodic=True, backend="python"), box=box)),
        "run-python-equals-torch": python_equals_torch,
        "ml-typo-keyword": lambda: MLPotential("regnn", modelPath=pt).createSystem(topology(), feild=[0, 0, 1.0]),
        "ml-unknown-constructor-argument": lambda: MLPotential("regnn", modelpath=pt),
        "ml-no-model-path": lambda: MLPotential("regnn"),
        "ml-precision-typo": lambda: MLPotential("regnn", modelPath=pt).createSystem(topology(), precision="quad"),
        "ml-precision-honoured": precision_honoured,
        "ml-interpolate-torch": lambda: mixed(interpolate=True),
        "ml-interpolate-python": interpolate_python,
    }


def _run_openmm_cases(pt: str, strict_pt: str, big_pt: str) -> None:
    """Child process: run every OpenMM case, print one JSON line per case as soon as it is done
    (so a crash loses only the cases after it)."""
    warnings.simplefilter("ignore")
    for name, action in _openmm_actions(pt, strict_pt, big_pt).items():
        try:
            outcome = str(action())
        except Exception as err:  # noqa: BLE001 - every outcome is reported to the parent
            lines = str(err).strip().splitlines() or [""]
            outcome = f"{type(err).__name__}: {lines[-1]}" if not lines[-1].startswith("builtins.") else lines[-1][9:]
        print(json.dumps({"case": name, "outcome": outcome}), flush=True)


@pytest.fixture(scope="module")
def openmm_outcomes(files):
    child = files.openmm.result()
    outcomes = {}
    for line in child.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            outcomes[record["case"]] = record["outcome"]
    return outcomes, child


@pytest.mark.parametrize("case", OPENMM, ids=[case[0] for case in OPENMM])
def test_openmm_bad_input(openmm_outcomes, case):
    name, expected = case
    outcomes, child = openmm_outcomes
    assert name in outcomes, f"the child process died before this case (exit {child.returncode}): {child.stderr[-2000:]}"
    if expected == "ok":
        assert outcomes[name] == "ok", outcomes[name]
    else:
        assert re.search(expected, outcomes[name]), outcomes[name]


# ---- the command line, as users run it ----------------------------------------------------------
def _regnn_exe() -> str:
    return shutil.which("regnn") or str(Path(sys.executable).with_name("regnn"))


#: (id, arguments (formatted with the fixture's paths), expected exit code, stderr pattern)
CLI = [
    ("cli-info-checkpoint", ["info", "{ckpt}"], 0, None),
    ("cli-evaluate-key-without-equals", ["evaluate", "{pt}", "{dir}/data.xyz", "--key", "energy"], 2, r"--key expects LABEL=NAME \(e.g. energy=E\), got 'energy'"),
    ("cli-evaluate-kcal-labels", ["evaluate", "{pt}", "{dir}/kcal.xyz", "--json"], 0, r"regnn: warning: .*labels in kcal/mol\?"),
    ("cli-export-to-directory", ["export", "{ckpt}", "-o", "{dir}"], 2, r"is a directory; give a file name"),
    ("cli-export-to-proc", ["export", "{ckpt}", "-o", "/proc/x.pt"], 2, r"^regnn: error: /proc/x.pt: cannot write here"),
    ("cli-label-field-max-nan", ["label", "--sample", "H2O", "-n", "2", "--field-max", "nan", "-o", "{dir}/l.xyz"], 2, r"field_max must be a finite number >= 0 \(V/Å\), got nan"),
    ("cli-train-config-and-resume", ["train", "{dir}/locked.yaml", "--resume", "{dir}/resumed_cli"], 2, r"give a CONFIG or --resume .*resumed_cli, not both"),
    ("cli-train-resume-new-architecture", ["train", "--resume", "{dir}/resumed_cli", "--set", "model.channels=32"], 2, r"cannot resume .*resumed_cli with a different model: model.channels \(4 -> 32\)"),
    ("cli-train-run-dir-locked", ["train", "{dir}/locked.yaml"], 2, r"locked is in use by another training process \(pid {pid}\)"),
]


@pytest.mark.parametrize("case", CLI, ids=[case[0] for case in CLI])
def test_cli_bad_input(files, case):
    name, _, code, pattern = case
    child = files.cli[name].result()
    returncode, out, err = child.returncode, child.stdout, child.stderr
    assert returncode == code, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and all(line.startswith("regnn: ") for line in lines), err
    assert sum(line.startswith("regnn: error:") for line in lines) == (0 if code == 0 else 1), err
    if pattern:
        assert re.search(pattern.replace("{pid}", str(os.getpid())), err), err
    if name == "cli-info-checkpoint":
        meta = json.loads(out)
        assert meta["species"] == ["H", "O"] and meta["checkpoint"]["epoch"] == 3 and meta["data_range"] == RANGE


if __name__ == "__main__" and sys.argv[1:2] == ["--openmm-cases"]:
    _run_openmm_cases(*sys.argv[2:5])
