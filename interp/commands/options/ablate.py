"""The options of `interp ablate` (its code: interp/commands/ablate.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import command
from interp.commands.options.text import add_split
from interp.commands.options.unit import add_unit_args


def add_parser(sub) -> None:
    p = command(
        sub, "ablate",
        help="the change in next-token loss when one unit is ablated, where it fires and elsewhere",
        description="Run held-out text with one feature, neuron or direction ablated (set to zero, or to its mean "
        "over the text) and print the change in next-token cross-entropy at the positions where the unit fires "
        "(value > 0) and elsewhere, with standard errors over positions.",
    )
    add_unit_args(p)
    p.add_argument("--value", default="zero", choices=["zero", "mean"])
    p.add_argument("--text", default="offline", help="text source")
    add_split(p, "heldout")
    p.add_argument("--tokens", type=int, default=16_384)
    p.add_argument("--context-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", default=None, help="also write the numbers to this JSON file")
