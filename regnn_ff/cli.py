"""``regnn``: thin subcommands over functions that can also be called from Python."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import List, Optional


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.output, frames=args.frames, epochs=args.epochs)


def _info(args: argparse.Namespace) -> None:
    from .export.load import load_model

    print(json.dumps(load_model(args.model).metadata, indent=2, ensure_ascii=False))


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, load_run_config, train

    if args.resume and args.config:
        raise ValueError(f"give a CONFIG or --resume {args.resume}, not both: a resumed run continues with "
                         f"{args.resume}/config.yaml (change optimiser entries with --set)")
    if args.resume:
        config = load_run_config(args.resume, args.set)
    elif args.config:
        config = TrainConfig.from_yaml(args.config, args.set)
    else:
        raise ValueError("give a CONFIG.yaml, or --resume RUN_DIR")
    train(config, resume=bool(args.resume))


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate
    from .train.metrics import format_table

    keys = {}
    for item in args.key:
        label, sep, name = item.partition("=")
        if not sep or not label or not name:
            raise ValueError(f"--key expects LABEL=NAME (e.g. energy=E), got '{item}'")
        keys[label] = name
    metrics = evaluate(args.model, args.data, keys)
    print(json.dumps(metrics, indent=1) if args.json else format_table({"data": metrics}))


def _export(args: argparse.Namespace) -> None:
    from .export.torchscript import export_checkpoint

    print(f"wrote {export_checkpoint(args.checkpoint, args.output, args.dtype, args.symmetrize, args.domain)}")


def _symmetrize(args: argparse.Namespace) -> None:
    from .analysis.selection import format_table
    from .analysis.symmetrize import symmetrize_checkpoint

    selection = symmetrize_checkpoint(args.checkpoint, args.output, args.group, args.data, args.finetune_epochs)
    print(format_table(selection))
    axis = "" if selection.projection.axis is None else f", axis ({', '.join(f'{x:+.4f}' for x in selection.projection.axis)})"
    print(f"θ projected onto {selection.group}{axis} ({selection.criterion})")
    print(f"wrote {args.output}")


def _label(args: argparse.Namespace) -> None:
    from .data.label import label_file, sample_configurations, write_frames

    if args.sample:
        frames = sample_configurations(
            args.sample, args.frames, temperature=args.temperature, field_max=args.field_max,
            fixed_field=args.field, seed=args.seed,
        )
        write_frames(frames, args.output)
        print(f"wrote {len(frames)} xTB-labelled frames of {args.sample} to {args.output}")
    elif args.input:
        count = label_file(args.input, args.output, field_key=args.field_key)
        print(f"wrote {count} xTB-labelled frames to {args.output}")
    else:
        raise ValueError("give a structures file to label, or --sample MOLECULE")


def _analyze(args: argparse.Namespace) -> None:
    from .analysis import write_report

    report = write_report(args.model, args.output, threshold=args.threshold, tolerance=args.tolerance, data=args.data)
    if report.get("selection"):
        print(report["selection"]["text"])
    print(report["summary"])
    for k, layer in enumerate(report["layers"]):
        norms = ", ".join(f"{name} {value:.3g}" for name, value in layer["block_norms"].items() if name != "0e")
        print(f"layer {k}: |block| / |0e|: {norms}; polar {layer['polar_vector']}, axial {layer['axial_vector']}")
    if "beyond_field" in report:
        print(report["beyond_field"])
    print(f"wrote {args.output}/report.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regnn", description="Relaxed-equivariant interatomic potentials.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="label water under fields with xTB, train a field-input relaxed model, export it")
    demo.add_argument("-o", "--output", default="regnn-demo", help="output directory (default: regnn-demo)")
    demo.add_argument("--frames", type=int, default=160, help="xTB-labelled frames (default: 160)")
    demo.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    demo.set_defaults(func=_demo)

    info = sub.add_parser("info", help="print the metadata of an exported model file or a checkpoint")
    info.add_argument("model", help="a .pt file written by regnn export, or a .ckpt")
    info.set_defaults(func=_info)

    train = sub.add_parser("train", help="train a model from a YAML config")
    train.add_argument("config", nargs="?", help="training config (YAML)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry, e.g. optim.lr=1e-3")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.ckpt")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="error metrics of a checkpoint or exported model on labelled data")
    evaluate.add_argument("model", help="a .ckpt or an exported .pt")
    evaluate.add_argument("data", help="labelled structures (extxyz or any ASE format)")
    evaluate.add_argument("--key", action="append", default=[], metavar="LABEL=NAME", help="label key in the file, e.g. energy=E")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser("export", help="compile a checkpoint to a TorchScript model file")
    export.add_argument("checkpoint", help="a .ckpt from a training run")
    export.add_argument("-o", "--output", required=True, help="output .pt file")
    export.add_argument("--dtype", choices=["float32", "float64"], help="precision of the exported model (default: as trained)")
    export.add_argument("--symmetrize", metavar="GROUP", help="project θ onto GROUP first ('auto': chosen by validation loss; see regnn symmetrize)")
    export.add_argument("--domain", action="store_true",
                        help="write the entry point for spatially decomposed MD (local + ghost atoms, e.g. LAMMPS with MPI)")
    export.set_defaults(func=_export)

    symmetrize = sub.add_parser("symmetrize", help="project θ onto the point group the data broke to (or a named one)")
    symmetrize.add_argument("checkpoint", help="a .ckpt from a training run")
    symmetrize.add_argument("-o", "--output", required=True, help="output .ckpt")
    symmetrize.add_argument("--group", default="auto", help="auto (default: chosen by validation loss) or a group, e.g. Cinfv, D4h, C1")
    symmetrize.add_argument("--data", help="labelled frames to choose with (default: the run's validation split)")
    symmetrize.add_argument("--finetune-epochs", type=int, default=5, help="epochs of fine-tuning for near misses (0: none)")
    symmetrize.set_defaults(func=_symmetrize)

    analyze = sub.add_parser("analyze", help="which symmetry θ breaks: block norms, directions, point group, plots")
    analyze.add_argument("model", help="a .ckpt or an exported .pt")
    analyze.add_argument("-o", "--output", default="analysis", help="output directory (default: analysis)")
    analyze.add_argument("--threshold", type=float, default=0.02, help="significant block: norm >= this × |0e| (default 0.02)")
    analyze.add_argument("--tolerance", type=float, default=0.01, help="symmetry: |gθ − θ| < this × max|θ| (default 0.01)")
    analyze.add_argument("--data", help="labelled frames for choosing the group (default: a checkpoint's validation split)")
    analyze.set_defaults(func=_analyze)

    label = sub.add_parser("label", help="GFN2-xTB energies, forces and dipoles under applied fields")
    label.add_argument("input", nargs="?", help="structures to label (each frame's info['field'] in V/Å)")
    label.add_argument("-o", "--output", required=True, help="output extxyz")
    label.add_argument("--field-key", default="field", help="info key of the field in the input (default: field)")
    label.add_argument("--sample", metavar="MOLECULE", help="generate frames of MOLECULE (ASE name or file) by xTB MD")
    label.add_argument("-n", "--frames", type=int, default=100, help="frames to sample (default: 100)")
    label.add_argument("--temperature", type=float, default=300.0, help="MD temperature in K (default: 300)")
    label.add_argument("--field-max", type=float, default=0.0, help="random field magnitudes up to this, V/Å")
    label.add_argument("--field", type=float, nargs=3, metavar=("EX", "EY", "EZ"), help="one fixed field (V/Å) instead")
    label.add_argument("--seed", type=int, default=0)
    label.set_defaults(func=_label)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings from the library (a field beyond the training range, labels in other units) are
    # advice to the user, not to a developer: one line, without the source location.
    print(f"regnn: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        args.func(args)
    except (ValueError, TypeError, OSError) as err:
        # OSError covers missing files, directories given as files and unwritable places; its text
        # names the file the user gave (see regnn_ff.atomic), never a temporary one.
        print(f"regnn: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
