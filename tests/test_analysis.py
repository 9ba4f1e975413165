"""Reading θ: the point group found for known θ (in any orientation), directions and axes, and
``regnn analyze`` on real model files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from e3nn import o3

from checks import random_orthogonal, set_theta_block, small_model
from regnn_ff.analysis import analyze, point_group
from regnn_ff.analysis.transform import BlockAction

IRREPS = o3.Irreps("1x0e+1x0o+1x1o+1x1e+1x2e+1x2o+1x3o+1x4e")
SLICES = {str(ir): sl for (_, ir), sl in zip(IRREPS, IRREPS.slices())}
CUBIC = np.zeros(9)
CUBIC[4], CUBIC[8] = 1.0, np.sqrt(5 / 7)  # the O_h-invariant l = 4 harmonic in e3nn's basis


def y2(axis):
    return o3.spherical_harmonics(2, torch.tensor(axis, dtype=torch.float64), normalize=True).numpy()


def theta(**blocks):
    t = np.zeros(IRREPS.dim)
    t[0] = 1.0
    for name, value in blocks.items():
        t[SLICES[name[1:]]] = value
    return t


RNG = np.random.default_rng(0)
CASES = {
    "O(3)": theta(),
    "SO(3)": theta(_0o=[0.4]),
    "C∞v": theta(_1o=[0.0, 0.0, 1.0]),
    "C∞h": theta(_1e=[0.0, 0.0, 1.0]),
    "C∞": theta(_1o=[0.0, 0.0, 1.0], _1e=[0.0, 0.0, 0.4]),
    "D∞h": theta(_2e=y2([0.0, 0.0, 1.0])),
    "D2h": theta(_2e=y2([0.0, 0.0, 1.0]) + 0.5 * y2([1.0, 0.0, 0.0])),
    "Oh": theta(_4e=CUBIC),
    "C4v": theta(_1o=[0.0, 0.0, 0.3], _4e=CUBIC),
    "C2v": theta(_1o=[0.0, 0.0, 1.0], _2e=y2([1.0, 0.0, 0.0])),
    "Ci": theta(_2e=RNG.normal(size=5), _1e=RNG.normal(size=3)),
    "C1": theta(_1o=RNG.normal(size=3), _2e=RNG.normal(size=5), _3o=RNG.normal(size=7)),
}


@pytest.mark.parametrize("expected", CASES)
def test_point_group_in_any_orientation(expected):
    group, _ = point_group(IRREPS, [CASES[expected]])
    assert group == expected
    g = random_orthogonal(7, improper=True)
    rotated = BlockAction(IRREPS).apply(g[None], CASES[expected][None])[0, 0]
    assert point_group(IRREPS, [rotated])[0] == expected


def test_group_is_the_intersection_over_layers():
    group, _ = point_group(IRREPS, [CASES["D∞h"], CASES["C∞v"]])  # uniaxial along z, polar along z
    assert group == "C∞v"
    group, _ = point_group(IRREPS, [CASES["Oh"], theta(_1o=[0.0, 0.0, 1.0])])
    assert group == "C4v"


def test_report_of_a_model_with_a_polar_theta():
    model = small_model(l_relaxed=2)
    direction = np.array([0.3, -0.5, 0.81])
    direction /= np.linalg.norm(direction)
    set_theta_block(model, "1o", 0.4 * direction)
    report = analyze(model)
    assert report["point_group"] == "C∞v"
    for layer in report["layers"]:
        assert layer["significant"] == ["1o"]
        assert layer["block_norms"]["1o"] == pytest.approx(0.4, rel=1e-6)
        np.testing.assert_allclose(layer["polar_vector"], direction, atol=1e-6)
        assert layer["axial_vector"] is None
    assert report["polar_vector_angles_between_layers"] == [pytest.approx(0.0, abs=1e-4)]
    json.dumps(report)  # JSON-serialisable


def test_uniaxial_quadrupole_axis_and_threshold():
    model = small_model(l_relaxed=2)
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    set_theta_block(model, "2e", 0.5 * y2(axis))
    weights = model.relaxed_weights()
    weights[0][2:5] = torch.tensor([0.0, 0.0, 1e-3], dtype=weights[0].dtype)  # below the threshold: ignored
    model.set_relaxed_weights(weights)
    report = analyze(model, threshold=0.02)
    assert report["point_group"] == "D∞h"
    quadrupole = report["layers"][1]["quadrupole"]
    assert abs(abs(np.dot(quadrupole["uniaxial_axis"], axis)) - 1) < 1e-6
    # With a finer threshold and tolerance the small polar z block counts: C2 about z, two mirrors.
    assert analyze(model, threshold=1e-4, tolerance=1e-4)["point_group"] == "C2v"

def test_strict_model_and_cli_on_files(tmp_path):
    assert analyze(small_model())["point_group"] == "O(3)"
    model = small_model(l_relaxed=1, field_irreps="1x1o")
    set_theta_block(model, "1e", [0.0, 0.6, 0.0])
    from regnn_ff.export import save_scripted
    from regnn_ff.train.checkpoint import save_checkpoint

    save_scripted(model, tmp_path / "m.pt")
    save_checkpoint({"model_config": model.config.to_dict(), "model_state": model.state_dict(), "ema_state": None,
                     "dtype": "float64"}, tmp_path / "m.ckpt")
    for name in ("m.pt", "m.ckpt"):
        result = subprocess.run([sys.executable, "-m", "regnn_ff.cli", "analyze", str(tmp_path / name), "-o", str(tmp_path / name[2:])],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / name[2:] / "report.json").read_text())
        assert report["point_group"] == "C∞h"
        assert np.allclose(np.abs(report["layers"][0]["axial_vector"]), [0.0, 1.0, 0.0])
        assert "beyond the given field (1x1o)" in report["beyond_field"]
        assert (tmp_path / name[2:] / "theta_layers.png").stat().st_size > 5000
