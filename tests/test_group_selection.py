"""Group selection and symmetrize on synthetic data whose broken symmetry is known.

Each data set is a pair potential plus one lab-frame term with a known stabilizer, along a random
axis: a polar field (C∞v), an axial field (C∞h), a uniaxial strain (D∞h), or nothing (O(3)). Labels
carry noise. A relaxed model trained on it in float32 must name the group, and its symmetrized
model must be invariant (energy) and equivariant (forces) under random elements of that group in
float64, to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from regnn_ff.analysis.groups import CANDIDATES, GroupProjector, candidate
from regnn_ff.analysis.selection import select_group, validation_frames
from regnn_ff.analysis.symmetrize import symmetrize_checkpoint
from regnn_ff.data.label import write_frames
from regnn_ff.train import TrainConfig, train
from regnn_ff.train.checkpoint import load_checkpoint, model_from_checkpoint

AXIS = Rotation.random(random_state=7).apply([0.0, 0.0, 1.0])


def _energy(positions: torch.Tensor, symbols: list, kind: str) -> torch.Tensor:
    """Pair energy (eV) of positions [N, 3] (Å), plus the symmetry-breaking term of ``kind``."""
    n = torch.as_tensor(AXIS)
    oxygen = torch.tensor([s == "O" for s in symbols])
    diff = positions[None, :, :] - positions[:, None, :]  # r_j - r_i
    dist = diff.norm(dim=-1) + torch.eye(len(symbols), dtype=positions.dtype)
    smooth = torch.where(dist < 3.0, (1 - dist / 3.0) ** 2, torch.zeros_like(dist)) * (1 - torch.eye(len(symbols), dtype=positions.dtype))
    energy = 0.5 * (smooth * (2.0 * torch.exp(-2.0 * (dist - 1.2)) - 2.0 * torch.exp(-(dist - 1.2)))).sum()
    if kind == "polar":  # O→H bond vectors along n: a dipole in a field
        pair = oxygen[:, None] & ~oxygen[None, :]
        energy = energy + 0.6 * (smooth * (diff @ n) * pair).sum()
    elif kind == "axial":  # (r_OH × r_OO')·b: invariant under rotations about b and the mirror ⊥ b only
        h = ~oxygen
        for i in torch.nonzero(oxygen).flatten():
            for k in torch.nonzero(oxygen).flatten():
                if k == i:
                    continue
                unit = diff[i] / dist[i][:, None]
                cross = torch.cross(unit[h], unit[k].expand(int(h.sum()), 3), dim=1)
                energy = energy + 4.0 * ((cross @ n) * smooth[i][h] * smooth[i, k]).sum()
    elif kind == "uniaxial":
        cos2 = (diff @ n) ** 2 / dist**2
        energy = energy + 0.5 * (smooth * (cos2 - 1.0 / 3.0)).sum()
    return energy


def _frames(kind: str, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    symbols = ["O", "H", "H", "O", "H", "H"]
    frames = []
    while len(frames) < count:
        positions = rng.uniform(0.0, 2.8, size=(6, 3))
        gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + 10 * np.eye(6)
        if gaps.min() < 1.0:
            continue
        pos = torch.tensor(positions, requires_grad=True)
        energy = _energy(pos, symbols, kind)
        (grad,) = torch.autograd.grad(energy, pos)
        atoms = Atoms(symbols, positions=positions)
        atoms.info["energy"] = float(energy.detach()) + rng.normal(scale=0.01)
        atoms.arrays["forces"] = -grad.numpy() + rng.normal(scale=0.02, size=(6, 3))
        frames.append(atoms)
    return frames


_TRAINED: dict = {}


@pytest.fixture
def trained(tmp_path_factory):
    """The checkpoint trained on data of a kind (each kind trained once per session)."""
    def get(kind: str):
        if kind not in _TRAINED:
            _TRAINED[kind] = _train(tmp_path_factory.mktemp(kind), kind)
        return _TRAINED[kind]
    return get


# The axial term b·(u × v) couples two different neighbour vectors of an atom: a channel-wise
# product of one density cannot form it (A × A = 0), so it is learned only through two blocks,
# which takes a wider model and more data (at 8 channels and 100 frames nothing was learned).
SIZES = {"axial": (200, 80, {"channels": 16, "correlation": 3})}


def _train(tmp_path, kind: str):
    frames, epochs, model = SIZES.get(kind, (100, 25, {"channels": 8, "correlation": 2}))
    data = tmp_path / f"{kind}.xyz"
    write_frames(_frames(kind, frames, seed=1), data)
    config = TrainConfig.from_dict({
        "model": {"r_max": 3.0, "l_max": 2, "l_relaxed": 2, **model},
        "data": {"train": str(data), "val_fraction": 0.25, "test_fraction": 0.0},
        "optim": {"max_epochs": epochs, "batch_size": 8, "lr": 0.02},
        "run_dir": str(tmp_path / kind), "seed": 0, "dtype": "float32",
    })
    return train(config, echo=lambda line: None) / "best.ckpt"


def _group_elements(group: str, axis, count: int = 6) -> np.ndarray:
    """Random elements of ``group`` about ``axis``: random rotation angles, times each listed element."""
    rng = np.random.default_rng(3)
    z = np.asarray(axis) / np.linalg.norm(axis)
    x = np.cross([1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    frame = np.stack([x, np.cross(z, x), z], axis=1)
    listed = candidate(group).elements(8)
    spins = Rotation.from_rotvec(np.outer(rng.uniform(0, 2 * np.pi, count), [0.0, 0.0, 1.0])).as_matrix()
    picked = listed[rng.integers(0, len(listed), count)]
    # A continuous group contains every rotation about its axis; a finite one only its listed elements.
    standard = spins @ picked if "∞" in group else picked
    return frame @ standard @ frame.T


EXPECTED = {"polar": "C∞v", "axial": "C∞h", "uniaxial": "D∞h", "none": "O(3)"}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_group_the_data_broke_to_is_named_and_the_symmetrized_model_keeps_it(tmp_path, trained, kind):
    checkpoint = trained(kind)
    symmetrized = tmp_path / "symmetrized.ckpt"
    selection = symmetrize_checkpoint(checkpoint, symmetrized)
    assert selection.group == EXPECTED[kind], selection.rows
    if selection.projection.axis is not None:
        cos = abs(float(np.dot(selection.projection.axis, AXIS)))
        assert np.degrees(np.arccos(min(cos, 1.0))) < 3.0  # a few noisy frames, a short training
    assert load_checkpoint(symmetrized)["symmetry"]["group"] == EXPECTED[kind]

    model = model_from_checkpoint(symmetrized).double()
    # Projected again in float64 in the same frame (the checkpoint keeps float32 θ): exact to rounding.
    thetas = [t.numpy() for t in model.relaxed_weights()]
    projected = GroupProjector(model.relaxed_irreps(), thetas).project(candidate(selection.group), selection.projection.frame)
    model.set_relaxed_weights([torch.as_tensor(t) for t in projected])
    atoms = _frames("none", 1, seed=5)[0]
    ref = model.compute(atoms)
    axis = selection.projection.axis if selection.projection.axis is not None else AXIS
    elements = _group_elements(selection.group, axis) if selection.group not in ("O(3)",) else \
        np.array([Rotation.random(random_state=s).as_matrix() * (-1) ** s for s in range(4)])
    for g in elements:
        moved = atoms.copy()
        moved.positions = atoms.positions @ g.T
        out = model.compute(moved)
        assert abs(out["energy"] - ref["energy"]) <= 1e-10 * max(1.0, abs(ref["energy"]))
        np.testing.assert_allclose(out["forces"], ref["forces"] @ g.T, atol=1e-10)


def test_an_unsymmetrized_model_is_not_invariant_under_the_groups_it_breaks(trained):
    # The check above can fail: the trained polar model, before projection, changes under the
    # horizontal mirror (not in C∞v) by far more than rounding.
    checkpoint = trained("polar")
    model = model_from_checkpoint(checkpoint).double()
    atoms = _frames("none", 1, seed=5)[0]
    ref = model.compute(atoms)
    flipped = np.eye(3) - 2 * np.outer(AXIS, AXIS)  # the horizontal mirror: not in C∞v
    moved = atoms.copy()
    moved.positions = atoms.positions @ flipped.T
    assert abs(model.compute(moved)["energy"] - ref["energy"]) > 1e-4
    # And the selection's table ranks the wrong groups as worse than the data's noise allows.
    state = load_checkpoint(checkpoint)
    selection = select_group(model, *validation_frames(state, model))
    rows = {r.group: r for r in selection.rows}
    assert not rows["O(3)"].accepted and not rows["C∞h"].accepted and rows["C∞v"].accepted


@pytest.mark.parametrize("group", [g.name for g in CANDIDATES])
def test_a_projected_theta_is_invariant_under_its_group(group):
    irreps = "1x0e+1x0o+1x1e+1x1o+1x2e+1x2o"
    rng = np.random.default_rng(0)
    thetas = [rng.normal(size=18), rng.normal(size=18)]
    projector = GroupProjector(irreps, thetas)
    projection = projector.fit(candidate(group))
    again = projector.project(candidate(group), projection.frame)
    # A projection: applying it twice changes nothing, and every element of the group fixes the result.
    np.testing.assert_allclose(GroupProjector(irreps, projection.thetas).project(candidate(group), projection.frame),
                               np.array(projection.thetas), atol=1e-12)
    if group in ("O(3)", "SO(3)"):
        elements = np.array([Rotation.random(random_state=s).as_matrix() * (1 if group == "SO(3)" else (-1) ** s) for s in range(4)])
    elif group == "Ci":
        elements = -np.eye(3)[None]
    elif group == "C1":
        elements = np.eye(3)[None]
    else:
        elements = _group_elements(group, projection.frame[:, 2])
        if candidate(group).placed == "frame":
            elements = projection.frame @ candidate(group).elements(8) @ projection.frame.T
    moved = projector.action.apply(elements, np.array(projection.thetas))
    np.testing.assert_allclose(moved, np.broadcast_to(np.array(projection.thetas), moved.shape), atol=1e-12)
    assert np.abs(np.array(projection.thetas) - np.array(thetas)).max() > 1e-3 or group == "C1"
    assert again.shape == (2, 18)


def test_the_lasso_step_zeroes_small_blocks_exactly_and_leaves_the_scalar():
    from regnn_ff.nn.relaxed import RelaxedSource

    source = RelaxedSource(2)
    with torch.no_grad():
        source.theta.copy_(torch.linspace(-1.0, 1.0, 18))
        source.theta[0] = 1.0  # the 0e entry
        source.theta[5:8] = torch.tensor([0.01, -0.02, 0.01])  # the 1o block: norm 0.0245
    before = source.theta.detach().clone()
    source.shrink_(0.02)  # radius 0.02·sqrt(3) = 0.035 for the 1o block
    after = source.theta.detach()
    assert after[0] == before[0]
    assert torch.all(after[5:8] == 0.0)
    big = slice(8, 13)  # the 2e block keeps its direction and loses 0.02·sqrt(5) of its norm
    assert torch.allclose(after[big].norm(), before[big].norm() - 0.02 * 5**0.5, atol=1e-6)
    assert torch.allclose(after[big] / after[big].norm(), before[big] / before[big].norm(), atol=1e-6)


def test_the_replaced_penalty_key_says_what_replaced_it():
    with pytest.raises(ValueError, match="theta_penalty.*optim.theta_lasso"):
        TrainConfig.from_dict({"loss": {"theta_penalty": 1e-3}})


def test_cli_symmetrize_and_export_carry_the_group_into_the_model_file(trained, tmp_path, capsys):
    from regnn_ff.cli import main
    from regnn_ff.export.load import load_model

    checkpoint = trained("polar")
    assert main(["symmetrize", str(checkpoint), "-o", str(tmp_path / "sym.ckpt")]) == 0
    assert "θ projected onto C∞v" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "sym.ckpt"), "-o", str(tmp_path / "sym.pt")]) == 0
    assert load_model(tmp_path / "sym.pt").metadata["symmetry"]["group"] == "C∞v"
    # One step: export --symmetrize, in float64; a named group is taken as given.
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "cs.pt"), "--dtype", "float64", "--symmetrize", "Cs"]) == 0
    meta = load_model(tmp_path / "cs.pt").metadata
    assert meta["symmetry"]["group"] == "Cs" and meta["dtype"] == "float64"
    assert main(["symmetrize", str(checkpoint), "-o", str(tmp_path / "x.ckpt"), "--group", "D7h"]) == 2
    assert "unknown group 'D7h'" in capsys.readouterr().err


def test_finetuning_holds_theta_in_the_group_and_recovers_what_the_projection_cost(trained):
    # The fine-tuning behind near misses: θ stays in the group's subspace through every step, and
    # the training loss ends below the bare projection's.
    from regnn_ff.analysis.selection import _finetuned, checkpoint_data, frame_losses, project_model_, projector_of
    from regnn_ff.train.checkpoint import model_from_state

    checkpoint = trained("polar")
    state = load_checkpoint(checkpoint)
    model = model_from_state(state, checkpoint)
    torch.manual_seed(0)
    with torch.no_grad():  # noise in θ's non-scalar blocks, which the projection onto C∞v removes
        for layer in model.layers:
            layer.source.theta[1:] += 0.05 * torch.randn_like(layer.source.theta[1:])
    _, properties, weights, finetune = checkpoint_data(state, model, finetune_epochs=3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    projector, group = projector_of(model), candidate("C∞v")
    frame = projector.fit(group).frame
    project_model_(model, projector, group, frame)
    bare = frame_losses(model, finetune.train, properties, weights).mean()
    _finetuned(model, start, (projector, group, frame), finetune, properties, weights)
    tuned = frame_losses(model, finetune.train, properties, weights).mean()
    assert tuned < bare
    thetas = np.stack([t.double().numpy() for t in model.relaxed_weights()])
    np.testing.assert_allclose(projector.project(group, frame, thetas), thetas, atol=1e-6)
