"""The console script as a user runs it: ``regnn demo`` and ``regnn info``."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _regnn(*args, cwd):
    exe = shutil.which("regnn") or str(Path(sys.executable).with_name("regnn"))
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_runs_and_exports_a_loadable_model(tmp_path):
    result = _regnn("demo", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "equivariant" in result.stdout
    model = tmp_path / "out" / "model.pt"
    assert model.is_file() and (tmp_path / "out" / "model.yaml").is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no half-written leftovers
    info = _regnn("info", str(model), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["species"] == ["H", "O"] and meta["field_irreps"] == "1x1o" and meta["l_relaxed"] == 2


def test_demo_numbers_show_equivariance_and_breaking(tmp_path):
    from regnn_ff.demo import run_demo

    numbers = run_demo(tmp_path, molecules=8, echo=lambda line: None)
    assert numbers["joint_rotation_error"] < 1e-10
    assert numbers["field_effect"] > 1e-6
    assert numbers["theta_z_change"] < 1e-10 < 1e-5 < numbers["theta_x_change"]
    assert numbers["reload_difference"] < 1e-10


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    result = _regnn("info", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.pt: not a TorchScript model file" in result.stderr
