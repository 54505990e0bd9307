"""``python -m loomfile`` / the ``loomfile`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loomfile", description="Work with Loom files.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a realistic dataset and exercise the main calls")
    demo.add_argument("--dir", default=None, help="folder for the generated files (default: a temp folder)")
    demo.add_argument("--cells", type=int, default=3000)
    demo.add_argument("--genes", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.dir, n_cells=args.cells, n_genes=args.genes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
