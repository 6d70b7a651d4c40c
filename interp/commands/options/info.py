"""The options of `interp info` (its code: interp/commands/info.py). Light imports only, so that
`interp --help` and argument errors answer at once."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="summarise an activation cache: model, hooks, tokens, norms, a sample of its text",
        description="Print what an activation cache written by `interp record` holds, check every shard's "
        "checksum, and give per-hook statistics over its first shard.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("cache", help="the cache folder")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum pass")
