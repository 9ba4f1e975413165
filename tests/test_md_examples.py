"""The MD examples run as a user runs them (few steps, a small exported field model)."""

import csv
import subprocess
import sys
from pathlib import Path

import ase.io
import pytest
import torch

from checks import small_model
from regnn_ff.export import save_scripted

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(4)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_scripted(small_model(field_irreps="1x1o", species=["H", "O"], dtype=torch.float32), path)
    return path


def _run(script, *args, cwd):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ase_md_example_writes_a_trajectory(tmp_path, model_file):
    result = _run("md_ase_field.py", "--model", str(model_file), "--steps", "40", "--every", "10", "-o", "traj.xyz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = ase.io.read(tmp_path / "traj.xyz", ":")
    assert len(frames) == 5  # steps 0, 10, 20, 30, 40
    # ASE's extxyz reader moves energy and dipole into a SinglePointCalculator.
    results = frames[-1].calc.results
    assert len(results["dipole"]) == 3 and results["forces"].shape == (3, 3)
    assert "steps/s" in result.stdout


def test_openmm_md_example_writes_dipole_csv_and_png(tmp_path, model_file):
    result = _run("md_openmm_field.py", "--model", str(model_file), "--steps", "60", "--every", "10",
                  "--platform", "Reference", "-o", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "run.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert float(rows[0]["field_z_V_per_A"]) == 0.0 and float(rows[1]["field_z_V_per_A"]) != 0.0
    assert (tmp_path / "run.png").stat().st_size > 1000
    assert "ns/day" in result.stdout
