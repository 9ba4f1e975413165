"""The console script as a user runs it: ``regnn demo``, ``info``, ``export``, ``evaluate``."""

import json
import shutil
import subprocess
import sys
from pathlib import Path


def _regnn(*args, cwd):
    exe = shutil.which("regnn") or str(Path(sys.executable).with_name("regnn"))
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_demo_labels_trains_exports_and_the_file_reloads(tmp_path):
    result = _regnn("demo", "-o", "out", "--frames", "40", "--epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for name in ("data.xyz", "run/best.ckpt", "run/metrics.csv", "model.pt"):
        assert (out / name).is_file(), name
    assert "forces" in result.stdout and "match the projected model" in result.stdout
    assert not list(out.rglob(".*.tmp*"))  # no half-written leftovers
    info = _regnn("info", str(out / "model.pt"), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["species"] == ["H", "O"] and meta["field_irreps"] == "1x1o" and meta["l_relaxed"] == 1
    again = _regnn("demo", "-o", "out", "--frames", "40", "--epochs", "1", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a training run" in again.stderr

    exported = _regnn("export", str(out / "run" / "best.ckpt"), "-o", "m64.pt", "--dtype", "float64", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    ckpt = _regnn("evaluate", str(out / "run" / "best.ckpt"), str(out / "data.xyz"), "--json", cwd=tmp_path)
    pt = _regnn("evaluate", "m64.pt", str(out / "data.xyz"), "--json", cwd=tmp_path)
    a, b = json.loads(ckpt.stdout), json.loads(pt.stdout)
    assert set(a) == set(b) >= {"energy_mae", "forces_mae", "dipole_mae"}
    for key in a:  # float32 training vs float64 export of the same weights
        assert abs(a[key] - b[key]) <= 1e-3 * max(1.0, abs(a[key])), key


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    result = _regnn("info", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.pt: not a TorchScript model file" in result.stderr
    missing = _regnn("evaluate", "nope.ckpt", "data.xyz", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.ckpt: no such model file" in missing.stderr
