"""Discovery: a relaxed model finds a field it was never told about, and names its symmetry.

    python examples/hidden_field/discover.py [-o OUT] [--molecule H2O] [--frames 300] [--epochs 60]
                                             [--strength 0.8] [--seed 0]

Configurations of a molecule (random orientations, xTB Langevin MD at 300 K) are labelled with
GFN2-xTB in one fixed electric field of ``--strength`` V/Å along a direction drawn at random from
``--seed`` (``--strength 0``: no field at all). Two models are trained without any field input: a
strict one and a relaxed one (θ up to l = 2). The group the data broke to is then chosen by
validation loss (``regnn analyze``): C∞v along the field's axis, or O(3) without a field.
Labelled data and finished runs in OUT are reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from regnn_ff.analysis import write_report
from regnn_ff.data.label import sample_configurations, write_frames
from regnn_ff.train import TrainConfig, train

MODELS = {"strict": {}, "relaxed (θ up to l=2)": {"l_relaxed": 2}}


def _angle(a, b) -> float:
    """Angle between two axes (sign ignored), degrees."""
    cos = abs(float(np.dot(a, b))) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(min(cos, 1.0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="hidden_field_runs")
    parser.add_argument("--molecule", default="H2O", help="ASE molecule name (e.g. H2O, CH3OH)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--strength", type=float, default=0.8, help="field strength, V/Å (0: no field)")
    parser.add_argument("--seed", type=int, default=0, help="draws the field direction")
    args = parser.parse_args()
    direction = Rotation.random(random_state=args.seed).apply([0.0, 0.0, 1.0])
    field = (args.strength * direction).tolist() if args.strength > 0 else None
    out = Path(args.output)
    data = out / f"{args.molecule}_field.xyz"
    if not data.exists():
        write_frames(sample_configurations(args.molecule, args.frames, fixed_field=field, seed=0), data)
    rows = {}
    for name, extra in MODELS.items():
        run_dir = out / ("relaxed" if extra else "strict")
        config = TrainConfig.from_dict({
            "model": {"channels": 16, "r_max": 4.0, **extra},
            "data": {"train": str(data), "val_fraction": 0.1, "test_fraction": 0.2},
            "loss": {"energy": 1.0, "forces": 10.0},
            "optim": {"max_epochs": args.epochs, "batch_size": 8, "lr": 0.01},
            "run_dir": str(run_dir),
            "seed": 0,
        })
        if not (run_dir / "summary.json").exists():  # a finished run in OUT is reused
            train(config, echo=lambda line: None)
        rows[name] = json.loads((run_dir / "summary.json").read_text())["test"]
        if extra:
            report = write_report(run_dir / "best.ckpt", run_dir / "analysis")
    print(f"{args.molecule}, {args.frames} frames, field {np.round(field, 4).tolist() if field else 'none'} V/Å\n")
    print("| model | energy MAE (meV/atom) | force MAE (meV/Å) |\n|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['energy_mae']:.2f} | {m['forces_mae']:.1f} |")
    selection = report["selection"]
    broken = "keep all of O(3)" if report["group"] == "O(3)" else f"break O(3) down to {report['group']}"
    print(f"\n{selection['text']}\n\nthe data {broken} ({selection['criterion']})")
    result = {"errors": rows, "group": report["group"], "field": field, "table": selection["table"]}
    if field is not None:
        polar = [layer["polar_vector"] for layer in report["layers"]]
        result["layer_polar_angles"] = [None if p is None else _angle(p, direction) for p in polar]
        result["group_axis_angle"] = None if selection["axis"] is None else _angle(selection["axis"], direction)
        print("angle between each layer's polar vector and the field: " + ", ".join(
            "no polar block" if a is None else f"{a:.2f}°" for a in result["layer_polar_angles"]))
        if result["group_axis_angle"] is not None:
            print(f"angle between the group's axis and the field: {result['group_axis_angle']:.2f}°")
    (out / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
