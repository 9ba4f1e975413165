"""Water in random electric fields: does giving the model the field help?

    python examples/field_water/compare.py [-o OUT] [--frames 300] [--epochs 60]

Labels water configurations with GFN2-xTB under random fields (|E| up to --field-max V/Å, random
directions), then trains three models on the same split and prints their test errors:

- strict: no field input, no θ (the field is invisible to it),
- field input: the field enters the relaxed source (θ ⊕ E),
- relaxed only: θ but no field input (it can learn one fixed direction, not a random one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regnn_ff.data.label import sample_configurations, write_frames
from regnn_ff.train import TrainConfig, train

MODELS = {
    "strict": {},
    "field input": {"field_irreps": "1x1o", "l_relaxed": 1},
    "relaxed only": {"l_relaxed": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="field_water_runs")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--field-max", type=float, default=1.0, help="V/Å")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    out = Path(args.output)
    data = out / "water_fields.xyz"
    if not data.exists():
        write_frames(sample_configurations("H2O", args.frames, field_max=args.field_max, seed=0), data)
    results = {}
    for name, extra in MODELS.items():
        config = TrainConfig.from_dict({
            "model": {"channels": args.channels, "r_max": 4.0, **extra},
            "data": {"train": str(data), "val_fraction": 0.1, "test_fraction": 0.2},
            "loss": {"energy": 1.0, "forces": 10.0, "dipole": 1.0 if "field_irreps" in extra else 0.0},
            "optim": {"max_epochs": args.epochs, "batch_size": 8, "lr": 0.01},
            "run_dir": str(out / name.replace(" ", "_")),
            "seed": 0,
        })
        run = train(config, echo=lambda line: None)
        results[name] = json.loads((run / "summary.json").read_text())["test"]
        print(f"{name}: done", flush=True)
    header = "| model | energy MAE (meV/atom) | force MAE (meV/Å) | dipole MAE (e·mÅ) |"
    print("\n" + header + "\n|---|---|---|---|")
    for name, m in results.items():
        dipole = f"{m['dipole_mae']:.1f}" if "dipole_mae" in m else "–"
        print(f"| {name} | {m['energy_mae']:.2f} | {m['forces_mae']:.1f} | {dipole} |")
    (out / "comparison.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
