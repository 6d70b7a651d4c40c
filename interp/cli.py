"""The `interp` command line. Each command lives in interp/commands/<name>.py and exposes
`add_parser(subparsers)` (which sets `func=run`) and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from interp.errors import InterpError

# module name in interp.commands, in the order --help lists them
COMMANDS = [
    "fetch",
    "record",
    "info",
    "train-sae",
    "eval-sae",
    "dashboard",
    "compare-layers",
    "train-lm",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp",
        description="Record a transformer's activations, train sparse autoencoders, read features by depth.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"interp.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InterpError as e:
        print(f"interp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interp: interrupted; everything written so far is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
