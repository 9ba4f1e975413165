"""Datasets, statistics, the training loop (loss decreases, exact resume, 2-process gloo), evaluation."""

import json
import os
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.calculators.singlepoint import SinglePointCalculator

from checks import molecule_cluster, small_model
from regnn_ff.data.datasets import KeyMap, Frame, read_frames, split_frames
from regnn_ff.data.label import sample_configurations, write_frames
from regnn_ff.evaluate import evaluate
from regnn_ff.train import TrainConfig, load_checkpoint, load_run_config, model_from_checkpoint, train
from regnn_ff.train.statistics import reference_energies


@pytest.fixture(scope="module")
def water_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "water.xyz"
    write_frames(sample_configurations("H2O", 24, field_max=0.4, seed=1), path)
    return path


def _config(tmp_path, data, **sections):
    config = {
        "model": {"channels": 4, "radial_hidden": 8, "r_max": 3.5, "l_relaxed": 1, "field_irreps": "1x1o", "l_max": 1},
        "data": {"train": str(data), "val_fraction": 0.25, "test_fraction": 0.0},
        "loss": {"dipole": 1.0},
        "optim": {"max_epochs": 3, "batch_size": 4, "lr": 0.01},
        "run_dir": str(tmp_path / "run"),
        "dtype": "float64",
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dataset_reads_labels_and_masks_missing_ones(tmp_path):
    a, b = molecule_cluster(0), molecule_cluster(1)
    a.calc = SinglePointCalculator(a, energy=-3.0, forces=np.ones((len(a), 3)))
    a.info["field"] = [0.1, 0.2, 0.3]
    b.info["E"] = -4.5  # energy only, under a custom key
    path = tmp_path / "mixed.xyz"
    ase.io.write(path, [a, b])
    frames = read_frames(path, KeyMap(energy="E"), field_dim=3)
    assert "forces" not in frames[1].labels and frames[1].labels["energy"] == -4.5
    assert "energy" not in frames[0].labels  # it is stored as 'energy', not 'E'
    frames = read_frames(path, KeyMap(), field_dim=3)
    np.testing.assert_allclose(frames[0].field, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(frames[1].field, 0.0)  # no field given: zero field
    assert frames[0].labels["forces"].shape == (len(a), 3)


def test_dataset_errors_name_file_and_frame(tmp_path):
    a = molecule_cluster()
    a.info["energy_x"] = 1.0
    a.info["field"] = [0.1, 0.2]
    path = tmp_path / "bad.xyz"
    ase.io.write(path, [molecule_cluster(), a])
    with pytest.raises(ValueError, match=r"bad.xyz, frame 1: 'field' must be 3 finite numbers"):
        read_frames(path, KeyMap(energy="energy_x"), field_dim=3)
    with pytest.raises(ValueError, match=r"bad.xyz: no frame has an energy \('energy'\) or forces"):
        read_frames(path, KeyMap(), field_dim=0)
    b = molecule_cluster()
    b.arrays["f"] = np.zeros((len(b), 2))
    b.info["energy_x"] = 0.0
    ase.io.write(path, [b])
    with pytest.raises(ValueError, match=r"bad.xyz, frame 0: 'f' has shape \(8, 2\), expected \(8, 3\)"):
        read_frames(path, KeyMap(energy="energy_x", forces="f"))
    with pytest.raises(FileNotFoundError, match="nothere.xyz: no such data file"):
        read_frames(tmp_path / "nothere.xyz")
    with pytest.raises(ValueError, match="unknown label key 'energie'"):
        KeyMap.from_dict({"energie": "E"})


def test_reference_energies_recover_a_linear_model():
    rng = np.random.default_rng(0)
    truth = {"H": -13.6, "C": -1030.0, "O": -2040.0}
    frames = []
    for _ in range(12):
        atoms = molecule_cluster(int(rng.integers(100)))
        symbols = rng.choice(["H", "C", "O"], size=len(atoms))
        atoms.set_chemical_symbols(symbols)
        energy = sum(truth[s] for s in symbols)
        frames.append(Frame(atoms=atoms, labels={"energy": np.array(energy)}))
    np.testing.assert_allclose(reference_energies(frames, ["H", "C", "O"]), [truth["H"], truth["C"], truth["O"]], rtol=1e-10)


def test_split_is_reproducible_and_disjoint():
    frames = [Frame(atoms=molecule_cluster(k), labels={}) for k in range(20)]
    a = split_frames(frames, 0.2, 0.1, seed=3)
    b = split_frames(frames, 0.2, 0.1, seed=3)
    assert [len(x) for x in a] == [14, 4, 2]
    assert [id(f) for part in a for f in part] == [id(f) for part in b for f in part]
    assert len({id(f) for part in a for f in part}) == 20


def test_training_lowers_the_loss_and_writes_the_run(tmp_path, water_data):
    config = _config(tmp_path, water_data, optim={"max_epochs": 6, "lr": 0.03})
    run = train(TrainConfig.from_yaml(config), echo=lambda s: None)
    history = load_checkpoint(run / "last.ckpt")["history"]
    assert history[-1]["train_loss"] < 0.9 * history[0]["train_loss"]
    assert min(row["val_loss"] for row in history) < history[0]["val_loss"]
    for name in ("config.yaml", "best.ckpt", "last.ckpt", "metrics.csv", "learning_curve.png", "summary.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*tmp*"))
    summary = json.loads((run / "summary.json").read_text())
    assert {"energy_mae", "forces_mae", "dipole_mae"} <= set(summary["val"])
    with pytest.raises(ValueError, match="already holds a training run"):
        train(TrainConfig.from_yaml(_config(tmp_path, water_data)), echo=lambda s: None)


class _Interrupted(Exception):
    pass


def _stop_after_epoch(n):
    def echo(line):
        if line.startswith(f"epoch {n:4d}"):
            raise _Interrupted  # after the epoch's checkpoints are written, as a kill would find them
    return echo


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resume_continues_exactly(tmp_path, water_data, schedule):
    optim = {"max_epochs": 4, "schedule": schedule, "warmup_epochs": 1}
    straight = train(TrainConfig.from_yaml(_config(tmp_path / "a", water_data, optim=optim)), echo=lambda s: None)
    with pytest.raises(_Interrupted):
        train(TrainConfig.from_yaml(_config(tmp_path / "b", water_data, optim=optim)), echo=_stop_after_epoch(2))
    interrupted = tmp_path / "b" / "run"
    assert load_checkpoint(interrupted / "last.ckpt")["epoch"] == 2
    train(load_run_config(interrupted), resume=True, echo=lambda s: None)
    a, b = load_checkpoint(straight / "last.ckpt"), load_checkpoint(interrupted / "last.ckpt")
    assert b["epoch"] == 4
    for name, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][name]), name
    for name, value in a["ema_state"].items():
        assert torch.equal(value, b["ema_state"][name]), name


def test_cosine_schedule_warms_up_and_decays_to_min_lr(tmp_path, water_data):
    optim = {"max_epochs": 5, "lr": 0.02, "min_lr": 1e-4, "warmup_epochs": 1}
    run = train(TrainConfig.from_yaml(_config(tmp_path, water_data, optim=optim)), echo=lambda s: None)
    rates = [row["lr"] for row in load_checkpoint(run / "last.ckpt")["history"]]
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.02)
    assert all(a > b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] < 0.2 * 0.02


def test_checkpoint_of_an_earlier_architecture_is_refused_by_version(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save({"format": "regnn-ff-checkpoint", "version": 1, "model_config": {"species": ["H"]}}, path)
    with pytest.raises(ValueError, match=r"old.ckpt: checkpoint version 1 is not supported \(expects 2\)"):
        load_checkpoint(path)


def test_checkpoint_from_before_last_r_max_loads_with_one_cutoff(tmp_path):
    """Checkpoints written before the last block had its own cutoff used r_max in every block: they
    must load as that model (the tensors alone would fit a shorter-cutoff model too)."""

    model = small_model(last_r_max=4.0)  # r_max in every block, as before last_r_max existed
    config = model.config.to_dict()
    del config["last_r_max"]
    path = tmp_path / "before.ckpt"
    torch.save({"format": "regnn-ff-checkpoint", "version": 2, "model_config": config, "dtype": "float64",
                "model_state": model.state_dict()}, path)
    loaded = model_from_checkpoint(path)
    assert loaded.config.last_r_max == loaded.config.r_max == 4.0
    atoms = molecule_cluster()
    assert loaded.compute(atoms)["energy"] == pytest.approx(model.compute(atoms)["energy"], rel=1e-12)


def test_resume_refuses_a_model_that_differs_from_its_checkpoint(tmp_path, water_data):
    run = train(TrainConfig.from_yaml(_config(tmp_path, water_data, optim={"max_epochs": 1})), echo=lambda s: None)
    state = load_checkpoint(run / "last.ckpt")
    state["model_config"]["last_r_max"] = 1.5  # as if the run had started under another default
    torch.save(state, run / "last.ckpt")
    with pytest.raises(ValueError, match=r"cannot resume .*: its checkpoint's model differs in last_r_max \(1.5 -> "):
        train(load_run_config(run), resume=True, echo=lambda s: None)


def test_two_process_gloo_run_matches_single_process(tmp_path, water_data):
    single = train(TrainConfig.from_yaml(_config(tmp_path / "one", water_data, optim={"max_epochs": 2, "batch_size": 5})), echo=lambda s: None)
    config = _config(tmp_path / "two", water_data, optim={"max_epochs": 2, "batch_size": 5})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "regnn_ff.cli", "train", str(config)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    a = load_checkpoint(single / "last.ckpt")["model_state"]
    b = load_checkpoint(tmp_path / "two" / "run" / "last.ckpt")["model_state"]
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-7, atol=1e-9), name
    assert result.stdout.count("epoch    2") == 1  # only rank 0 reports
    assert moved < 1e-8


def test_evaluate_known_model_gives_exact_errors(tmp_path):
    model = small_model(field_irreps="1x1o")
    frames = []
    for seed in range(4):
        atoms = molecule_cluster(seed)
        field = [0.1 * seed, 0.0, -0.1]
        out = model.compute(atoms, field=field, properties=["energy", "forces", "dipole"])
        atoms.info["field"] = field
        # Labels = the model's own predictions, with the energy shifted by 0.02 eV per atom.
        atoms.calc = SinglePointCalculator(atoms, energy=out["energy"] + 0.02 * len(atoms), forces=out["forces"], dipole=out["dipole"])
        frames.append(atoms)
    data = tmp_path / "labels.xyz"
    ase.io.write(data, frames)
    from regnn_ff.export import save_scripted
    from regnn_ff.train.checkpoint import save_checkpoint

    save_checkpoint({"model_config": model.config.to_dict(), "model_state": model.state_dict(), "ema_state": None,
                     "dtype": "float64"}, tmp_path / "model.ckpt")
    save_scripted(model, tmp_path / "model.pt")
    for path in (tmp_path / "model.ckpt", tmp_path / "model.pt"):
        metrics = evaluate(path, data)
        # extxyz stores positions and forces with 8 decimals: errors at that rounding level only.
        assert metrics["energy_mae"] == pytest.approx(20.0, abs=1e-4)  # meV/atom
        assert metrics["forces_mae"] < 1e-4 and metrics["dipole_mae"] < 1e-4


def test_cli_train_rejects_unknown_keys(tmp_path, water_data):
    config = _config(tmp_path, water_data, optim={"learning_rate": 0.1})
    result = subprocess.run([sys.executable, "-m", "regnn_ff.cli", "train", str(config)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "train.yaml: optim: unknown key 'learning_rate'" in result.stderr
    assert result.stderr.strip().count("\n") == 0
