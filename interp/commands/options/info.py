"""The options of `interp info` (its code: interp/commands/info.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import command


def add_parser(sub) -> None:
    p = command(
        sub, "info",
        help="summarise an activation cache: model, hooks, tokens, norms, a sample of its text",
        description="Print what an activation cache written by `interp record` holds, check every shard's "
        "checksum, and give per-hook statistics over its first shard.",
    )
    p.add_argument("cache", help="the cache folder")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum pass")
