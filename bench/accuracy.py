"""Accuracy next to speed: the bench width trained on the demo's data (xTB water under fields).

    python bench/accuracy.py [--epochs 30]

Labels the same 160 frames as ``regnn demo`` (GFN2-xTB, random fields up to 1 V/Å, seed 0), trains
the demo's run at the width the speed bench times (32 channels, l ≤ 2, r_max 5 Å; θ up to l = 1 and
an E-field input, as in the demo) and reports its test errors and its time per energy + forces call
on a 192-atom water box. ``speed.py`` calls :func:`demo_accuracy` for its table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import time_interleaved  # noqa: E402

from regnn_ff.data.label import sample_configurations, write_frames  # noqa: E402
from regnn_ff.data.structures import water_box  # noqa: E402
from regnn_ff.demo import FIELD_MAX, demo_config  # noqa: E402
from regnn_ff.train import model_from_checkpoint, train  # noqa: E402

BENCH_WIDTH = {"channels": 32, "l_max": 2, "r_max": 5.0, "num_layers": 2}


def demo_accuracy(workdir: Path, epochs: int = 30, frames: int = 160, repeats: int = 10) -> dict:
    """Train the demo's run at the bench width; test MAE (meV/atom, meV/Å, e·mÅ) and ms per call."""
    data = workdir / "demo-data.xyz"
    write_frames(sample_configurations("H2O", frames, field_max=FIELD_MAX, seed=0), data)
    config = demo_config(data, workdir / "demo-run", epochs)
    config.model.update(BENCH_WIDTH)
    run = train(config, echo=lambda line: None)
    test = json.loads((run / "summary.json").read_text())["test"]
    model = model_from_checkpoint(run / "best.ckpt").float().eval()
    box = water_box(64)
    seconds = time_interleaved({"trained": lambda: model.compute(box, field=[0.0, 0.0, 0.1])}, repeats)["trained"]
    return {"epochs": epochs, "energy_mae": test["energy_mae"], "forces_mae": test["forces_mae"],
            "dipole_mae": test.get("dipole_mae"), "ms_per_call_192": seconds * 1e3}


def describe(result: dict) -> str:
    return (f"demo data, bench width, {result['epochs']} epochs: test force MAE {result['forces_mae']:.1f} meV/Å, "
            f"energy {result['energy_mae']:.2f} meV/atom, dipole {result['dipole_mae']:.1f} e·mÅ; "
            f"{result['ms_per_call_192']:.1f} ms per call at 192 atoms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    print(describe(demo_accuracy(Path(tempfile.mkdtemp()), args.epochs)))


if __name__ == "__main__":
    main()
