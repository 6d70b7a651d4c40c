"""The options of `interp steer` (its code: interp/commands/steer.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import command
from interp.commands.options.unit import add_unit_args


def add_parser(sub) -> None:
    p = command(
        sub, "steer",
        help="generate default and steered text side by side, editing one feature, neuron or direction",
        description="Continue --prompt with and without an edit of one unit (the same seed for both), print the "
        "two side by side, and the largest changes in next-token probability after the prompt.",
    )
    add_unit_args(p)
    p.add_argument("--mode", default="add", choices=["add", "clamp", "ablate"])
    p.add_argument("--strength", type=float, default=10.0, help="add: alpha; clamp: the value; ablate: unused")
    p.add_argument("--positions", default="all", choices=["all", "firing"], help="where the edit applies")
    p.add_argument("--prompt", required=True)
    p.add_argument("--n", type=int, default=3, help="continuations (seeds seed .. seed+n-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=30)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top", type=int, default=10, help="next-token probability changes to list")
