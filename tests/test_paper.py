"""The paper's experiments (examples/paper/): θ recovers the symmetry each target broke."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PAPER = Path(__file__).resolve().parents[1] / "examples" / "paper"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"paper_{name}", PAPER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cube():
    return _load("cube")


def test_cube_to_cube_keeps_oh_with_the_cubic_harmonic(cube):
    result = cube.run("cube")
    report = result["report"]
    assert report["point_group"] == "Oh"
    for layer in report["layers"]:
        assert layer["significant"] == ["4e"]
        norms = layer["block_norms"]
        assert all(value < 1e-4 for name, value in norms.items() if name not in ("0e", "4e"))
        theta_4e = np.array(layer["theta"])[-18:-9]
        assert theta_4e[8] / theta_4e[4] == pytest.approx(np.sqrt(5 / 7), abs=1e-3)
        others = np.delete(theta_4e, [4, 8])
        assert np.abs(others).max() < 1e-4 * np.abs(theta_4e).max()


def test_cube_to_prism_breaks_to_d4h_with_a_uniaxial_quadrupole_along_z(cube):
    report = cube.run("prism")["report"]
    assert report["point_group"] == "D4h"
    assert any("2e" in layer["significant"] for layer in report["layers"])
    for layer in report["layers"]:
        assert set(layer["significant"]) <= {"2e", "4e"}
        if layer["quadrupole"] is not None and "2e" in layer["significant"]:
            assert abs(abs(layer["quadrupole"]["uniaxial_axis"][2]) - 1.0) < 1e-4


def test_cube_to_random_box_breaks_everything(cube):
    report = cube.run("random")["report"]
    assert report["point_group"] in ("C1", "Ci")


def test_charged_particle_theta_points_along_e_and_b():
    result = _load("charged_particle").run()
    assert result["loss"] < 1e-6
    assert result["angle_1o_E"] < 1.0 and result["angle_1e_B"] < 1.0
    assert result["report"]["point_group"] == "Cs"
