"""``regnn demo``: the main job on built-in data, end to end in a couple of minutes on 2 CPU cores.

1. label water configurations with GFN2-xTB under random electric fields (``DIR/data.xyz``),
2. train a relaxed model whose source is θ ⊕ E (``DIR/run/``) and print its error table,
3. choose the group θ keeps by validation loss (random field directions leave nothing to break:
   O(3)), project θ onto it, export to TorchScript (``DIR/model.pt``, the group in its metadata)
   and check the file reproduces the checkpoint,
4. check numerically, in float64, that rotating molecule and field together rotates forces and dipole,
5. run a short OpenMM simulation of the exported model (registered by the OpenMM adapter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import numpy as np
from ase.build import molecule
from scipy.spatial.transform import Rotation

from .data.label import sample_configurations, write_frames
from .evaluate import evaluate
from .export import save_scripted
from .analysis.symmetrize import apply_selection, choose_group
from .train import TrainConfig, train
from .train.checkpoint import load_checkpoint, model_from_state

FIELD_MAX = 1.0  # V/Å


def md_steps():
    """MD runs that adapters register (entry point group ``regnn_ff.demo_md``) to end the demo with."""
    from importlib.metadata import entry_points

    return [entry.load() for entry in entry_points(group="regnn_ff.demo_md")]


def demo_config(data: Path, run_dir: Path, epochs: int) -> TrainConfig:
    """The demo's training run: a small field-input relaxed model (θ up to l = 1)."""
    return TrainConfig.from_dict({
        "model": {"channels": 16, "r_max": 4.0, "l_relaxed": 1, "field_irreps": "1x1o"},
        "data": {"train": str(data), "val_fraction": 0.1, "test_fraction": 0.15},
        "loss": {"energy": 1.0, "forces": 10.0, "dipole": 1.0},
        "optim": {"max_epochs": epochs, "batch_size": 8, "lr": 0.01},
        "run_dir": str(run_dir),
        "seed": 0,
    })


def run_demo(output_dir: Union[str, Path] = "regnn-demo", frames: int = 160, epochs: int = 30,
             echo: Callable[[str], None] = print) -> dict:
    """Run the demo into ``output_dir``; returns the numbers it printed."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.xyz"
    echo(f"labelling {frames} water configurations with GFN2-xTB under random fields up to {FIELD_MAX} V/Å ...")
    write_frames(sample_configurations("H2O", frames, field_max=FIELD_MAX, seed=0), data)

    config = demo_config(data, out / "run", epochs)
    if (out / "run" / "last.ckpt").exists():
        raise ValueError(f"{out / 'run'} already holds a training run; choose another output directory with -o")
    run = train(config, echo=echo)

    state = load_checkpoint(run / "best.ckpt")
    model = model_from_state(state, run / "best.ckpt")
    selection = choose_group(state, model, "auto")
    apply_selection(model, selection)
    echo(f"θ kept {selection.group} ({selection.criterion}); the exported model is projected onto it")
    path = save_scripted(model, out / "model.pt", state.get("data_range"), selection.to_dict())
    from_checkpoint = evaluate(model, data)
    from_file = evaluate(path, data)
    agreement = max(abs(from_checkpoint[k] - from_file[k]) for k in from_checkpoint)
    echo(f"exported {path}: its errors on all {frames} frames match the projected model's to {agreement:.1e}")

    water = molecule("H2O")
    field = np.array([0.0, 0.3, 0.4])
    rotation = Rotation.random(random_state=1).as_matrix()
    moved = water.copy()
    moved.positions = water.positions @ rotation.T
    props = ["energy", "forces", "dipole"]
    exact = model.double()
    apply_selection(exact, selection)  # θ projected again in float64
    ref = exact.compute(water, field=field, properties=props)
    rot = exact.compute(moved, field=rotation @ field, properties=props)
    equivariance = max(abs(rot["energy"] - ref["energy"]) / abs(ref["energy"]),
                       np.abs(rot["forces"] - ref["forces"] @ rotation.T).max() / np.abs(ref["forces"]).max(),
                       np.abs(rot["dipole"] - rotation @ ref["dipole"]).max() / np.abs(ref["dipole"]).max())
    breaking = max(float(exact.layers[k].source.penalty().detach()) for k in range(len(exact.layers)))
    echo(f"dipole of water in E = {field.tolist()} V/Å: {np.round(ref['dipole'].astype(float), 3).tolist()} e·Å")
    echo(f"θ's non-scalar blocks after projection onto {selection.group}: norm {breaking:.1e} at most per layer; "
         f"rotating molecule and field together changes energy, forces and dipole by {equivariance:.1e} "
         f"relative at most (float64)")
    for step in md_steps():
        step(path, echo)
    return {"model_path": str(path), "export_agreement": agreement, "equivariance_error": equivariance,
            "theta_breaking": breaking, "forces_mae": from_checkpoint.get("forces_mae"), "group": selection.group}
