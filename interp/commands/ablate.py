"""interp ablate: the change in next-token cross-entropy when one unit is ablated, at the
positions where it fires and elsewhere."""

from __future__ import annotations

import math
import time

import torch

from interp.commands.unit import model_and_unit
from interp.files import write_json_atomic
from interp.sites import check_context
from interp.tokens import token_windows
from sae import Ablate, apply


def token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[b, p-1] cross-entropy of each next token."""
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def _mean_se(x: torch.Tensor) -> tuple[float, float, int]:
    n = x.numel()
    if n == 0:
        return math.nan, math.nan, 0
    x = x.double()
    return float(x.mean()), float(x.std() / math.sqrt(n)) if n > 1 else math.nan, n


@torch.no_grad()
def run(args) -> int:
    started = time.time()
    model, unit = model_and_unit(args)
    check_context(model, args.context_size)
    windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split=args.split,
                            max_tokens=args.tokens)
    dev = next(model.parameters()).device
    values, clean = [], []
    for i in range(0, len(windows), args.batch_size):
        tokens = windows[i:i + args.batch_size].to(dev)
        seen = {}
        logits = model.run_with_hooks(tokens, fwd_hooks=[(unit.raw_point, lambda a, hook: seen.__setitem__("v", unit.read_raw(model, a)))])
        values.append(seen["v"][:, :-1].cpu())
        clean.append(token_ce(logits, tokens).cpu())
    v = torch.cat(values)
    mean = float(v.mean())
    edit = Ablate(unit, args.value, mean=mean if args.value == "mean" else None)
    ablated = []
    with apply(model, [edit]):
        for i in range(0, len(windows), args.batch_size):
            tokens = windows[i:i + args.batch_size].to(dev)
            ablated.append(token_ce(model(tokens), tokens).cpu())
    delta = torch.cat(ablated) - torch.cat(clean)
    fires = v > 0
    rows = {"where it fires": delta[fires], "elsewhere": delta[~fires], "all positions": delta.flatten()}
    print(f"{model.cfg.model_name}: ablate ({args.value}{f' = {mean:.4f}' if args.value == 'mean' else ''}) "
          f"{unit.describe()} on {windows.numel():,} {args.split} tokens of {args.text}")
    print(f"  the unit fires (> 0) on {int(fires.sum()):,} of {fires.numel():,} predicting positions "
          f"({float(fires.double().mean()):.4f})")
    print(f"  {'positions':<16} {'n':>8} {'mean change in CE (nats)':>26} {'s.e.':>9}")
    out = {"model": model.cfg.model_name, "unit": unit.describe(), "value": args.value, "mean_value": mean,
           "ce_clean": float(torch.cat(clean).double().mean()), "rows": {}}
    for name, d in rows.items():
        m, se, n = _mean_se(d)
        out["rows"][name] = {"n": n, "delta_ce": m, "se": se}
        print(f"  {name:<16} {n:>8,} {m:>26.5f} {se:>9.5f}")
    if args.out:
        write_json_atomic(args.out, out | {"seconds": time.time() - started})
        print(f"wrote {args.out}")
    return 0
