"""interp steer: default and steered continuations side by side, and the largest changes in
next-token probability after the prompt."""

from __future__ import annotations

import textwrap

import torch

from interp.commands.unit import model_and_unit
from interp.errors import InterpError
from sae import Ablate, Add, Clamp, apply, generate


def make_edit(mode: str, unit, strength: float, positions: str):
    if mode == "add":
        return Add(unit, strength, positions=positions)
    if mode == "clamp":
        return Clamp(unit, strength, positions=positions)
    return Ablate(unit, positions=positions)


def run(args) -> int:
    if args.n < 1:
        raise InterpError("--n must be at least 1.")
    if not args.prompt.strip():
        raise InterpError("--prompt is empty; give some text to continue.")
    model, unit = model_and_unit(args)
    edit = make_edit(args.mode, unit, args.strength, args.positions)
    print(f"{model.cfg.model_name}: {args.mode} {unit.describe()}"
          + (f" strength {args.strength:g}" if args.mode != "ablate" else "") + f", positions {args.positions}")
    print(f"prompt: {args.prompt!r}\n")
    width = 60
    for i in range(args.n):
        g = generate(model, args.prompt, [edit], seed=args.seed + i, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature)
        left = textwrap.wrap(repr(g.default.text)[1:-1], width) or [""]
        right = textwrap.wrap(repr(g.steered.text)[1:-1], width) or [""]
        print(f"seed {args.seed + i}: {'default':<{width}} | steered")
        for a, b in zip(left + [""] * (len(right) - len(left)), right + [""] * (len(left) - len(right))):
            print(f"  {a:<{width}} | {b}")
        acts = g.steered.activations[0]
        print(f"  mean log-prob {sum(g.default.logprobs) / len(g.default.logprobs):.3f} | "
              f"{sum(g.steered.logprobs) / len(g.steered.logprobs):.3f};  unit's value before the edit, max over "
              f"the steered text {max(acts):.3f}\n")
    tokens = model.to_tokens(args.prompt)
    with torch.no_grad():
        p_clean = model(tokens)[0, -1].softmax(-1)
        with apply(model, [edit]):
            p_edit = model(tokens)[0, -1].softmax(-1)
    diff = p_edit - p_clean
    order = diff.abs().argsort(descending=True)[:args.top]
    print(f"largest changes in next-token probability after the prompt (KL {float((p_clean * (p_clean.log() - p_edit.log())).sum()):.4f} nats):")
    for t in order.tolist():
        print(f"  {model.tokenizer.decode([t])!r:<20} {float(p_clean[t]):.4f} -> {float(p_edit[t]):.4f}  ({float(diff[t]):+.4f})")
    return 0
