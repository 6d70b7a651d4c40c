"""The `interp` command line. Each command has two modules: interp/commands/options/<name>.py
declares its arguments (`add_parser(subparsers)`, light imports only) and interp/commands/<name>.py
does the work (`run(args) -> int`, with torch and friends imported at its top). The parser is built
from the options alone and the chosen command's module is imported only once its arguments parse,
so `interp --help`, `interp CMD --help` and argument errors answer without importing torch."""

from __future__ import annotations

import argparse
import importlib
import sys

from interp.errors import InterpError
from interp.quiet import quiet_third_parties
from interp.text import set_decoding

# command name -> module name in interp.commands (and interp.commands.options), in --help order
COMMANDS = {
    "fetch": "fetch",
    "record": "record",
    "info": "info",
    "train-sae": "train_sae",
    "eval-sae": "eval_sae",
    "dashboard": "dashboard",
    "compare-layers": "compare_layers",
    "compare-edits": "compare_edits",
    "train-lm": "train_lm",
    "steer": "steer",
    "ablate": "ablate",
    "serve": "serve",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2): `interp CMD: error: ...`, and
    `interp CMD --help` for the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="interp",
        description="Record a transformer's activations, train sparse autoencoders, read features by depth.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"interp.commands.options.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_third_parties():
            if hasattr(args, "encoding"):
                set_decoding(args.encoding, args.errors)
            command = importlib.import_module(f"interp.commands.{COMMANDS[args.command]}")
            return int(command.run(args) or 0)
    except InterpError as e:
        print(f"interp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interp: interrupted; everything written so far is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
