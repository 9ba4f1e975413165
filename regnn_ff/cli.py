"""``regnn``: thin subcommands over functions that can also be called from Python."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.output, molecules=args.molecules)


def _info(args: argparse.Namespace) -> None:
    from .export import load_scripted

    _, meta = load_scripted(args.model)
    print(json.dumps(meta, indent=2, ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regnn", description="Relaxed-equivariant interatomic potentials.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build, check and export a relaxed model on a built-in water box")
    demo.add_argument("-o", "--output", default="regnn-demo", help="output directory (default: regnn-demo)")
    demo.add_argument("--molecules", type=int, default=8, help="water molecules in the box (default: 8)")
    demo.set_defaults(func=_demo)
    info = sub.add_parser("info", help="print the metadata stored in an exported model file")
    info.add_argument("model", help="a .pt file written by regnn")
    info.set_defaults(func=_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"regnn: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
