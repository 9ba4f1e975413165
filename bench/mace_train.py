"""The MACE side of ``accuracy.py``, run with the Python of the MACE virtual environment.

    <mace-venv>/bin/python bench/mace_train.py train WORK_DIR --threads 2 -- [mace_run_train arguments]
    <mace-venv>/bin/python bench/mace_train.py eval MODEL TEST.xyz BOX.xyz OUT.json [--threads 2] [--repeats 10]

``train`` runs MACE's own trainer (``mace.cli.run_train``, the code behind ``mace_run_train``) in
this process with ``torch.set_num_threads(threads)``; the only addition is that every validation
record MACE writes to its results file (``--eval_interval``) also gets ``cpu_s`` and ``wall_s``:
process CPU and wall seconds since the trainer was called, measured as for our trainer, so the
learning curves of both share one time axis. Writes ``WORK_DIR/timing.json``.

``eval`` loads the trained model through MACE's ASE calculator, predicts energy and forces of every
test frame, and times energy + forces on the box (median after warm-up). Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # e3nn 0.4.4 loads constants with torch.load

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import time_interleaved  # noqa: E402


def train(work_dir: Path, threads: int, mace_args: list) -> None:
    from mace.cli import run_train
    from mace.tools import utils

    torch.set_num_threads(threads)
    work_dir.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    log = utils.MetricsLogger.log

    def timed_log(self, record):
        if record.get("mode") == "eval":
            record = dict(record, cpu_s=time.process_time() - cpu0, wall_s=time.perf_counter() - wall0)
        log(self, record)

    utils.MetricsLogger.log = timed_log
    sys.argv = ["mace_run_train", f"--work_dir={work_dir}", *mace_args]
    run_train.main()
    (work_dir / "timing.json").write_text(json.dumps({
        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
        "torch_threads": torch.get_num_threads(), "mace_version": _mace_version(),
    }))


def _mace_version() -> str:
    from mace import __version__

    return __version__


def evaluate(model_path: str, test_path: str, box_path: str, out_path: str, threads: int, repeats: int) -> None:
    import ase.io
    from mace.calculators import MACECalculator

    torch.set_num_threads(threads)
    calc = MACECalculator(model_paths=model_path, device="cpu", default_dtype="float32")
    energies, forces = [], []
    for atoms in ase.io.read(test_path, index=":"):
        atoms.calc = calc
        energies.append(float(atoms.get_potential_energy()))
        forces.append(atoms.get_forces().tolist())
    box = ase.io.read(box_path)
    box.calc = calc

    def call():
        box.positions[0, 0] += 1e-6  # a new geometry each call, as in MD
        box.get_forces()

    seconds = time_interleaved({"mace": call}, repeats)["mace"]
    parameters = sum(p.numel() for p in calc.models[0].parameters())
    Path(out_path).write_text(json.dumps({
        "energies": energies, "forces": forces, "seconds_per_call": seconds, "box_atoms": len(box),
        "parameters": parameters, "torch_threads": torch.get_num_threads(), "mace_version": _mace_version(),
    }))


def main() -> None:
    argv = sys.argv[1:]
    mace_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, mace_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("work_dir", type=Path)
    p_train.add_argument("--threads", type=int, default=2)
    p_eval = sub.add_parser("eval")
    for name in ("model", "test", "box", "out"):
        p_eval.add_argument(name)
    p_eval.add_argument("--threads", type=int, default=2)
    p_eval.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args.work_dir, args.threads, mace_args)
    else:
        evaluate(args.model, args.test, args.box, args.out, args.threads, args.repeats)


if __name__ == "__main__":
    main()
