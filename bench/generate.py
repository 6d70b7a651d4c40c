"""Steered generation speed: `sae.generate` (KV cache; a default and a steered run per
call) against TransformerLens's own `model.generate` (KV cache, one run), interleaved round by
round on the same prompt, and a full-forward loop without a cache (what a no-cache version does).
Prints new tokens per second of each: for sae.generate both continuations' tokens count.

    flock /work/logs/cpu.lock python bench/generate.py [--model smollm2-135m] [--tokens 20] [--repeats 3]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import interleave, ratios, start  # noqa: E402
from interp.models import load_model  # noqa: E402
from sae import Add, Neuron, generate  # noqa: E402

PROMPT = "The history of the whale fishery begins with"


@torch.no_grad()
def no_cache_loop(model, tokens: torch.Tensor, n: int) -> None:
    toks = tokens
    for _ in range(n):
        nxt = model(toks)[0, -1].argmax()
        toks = torch.cat([toks, nxt.view(1, 1)], 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--tokens", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args, out = start(p, "generate")
    model = load_model(args.model)
    model.requires_grad_(False)
    layer = model.cfg.n_layers // 2
    edit = [Add(Neuron(layer, 7), 5.0)]
    tokens = model.to_tokens(PROMPT)
    n = args.tokens
    fns = {
        "sae.generate (default + steered)": lambda: generate(model, PROMPT, edit, seed=0, max_new_tokens=n),
        "TL model.generate (one run)": lambda: model.generate(tokens, max_new_tokens=n, stop_at_eos=False, verbose=False,
                                                             use_past_kv_cache=True),
        "no-cache full-forward loop (one run)": lambda: no_cache_loop(model, tokens, n),
    }
    times = interleave(fns, args.repeats, warmup=1)
    made = {"sae.generate (default + steered)": 2 * n}
    out.say(f"{args.model}, prompt of {tokens.shape[1]} tokens, {n} new tokens, edit: add 5 to neuron 7 of layer {layer}; "
            f"{args.repeats} interleaved rounds after 1 warm-up")
    for name, ts in times.items():
        s = sorted(ts)
        k = made.get(name, n)
        out.say(f"  {name:<38} median {s[len(s) // 2]:.2f} s  = {k / s[len(s) // 2]:.2f} new tokens/s  "
                f"[{k / s[-1]:.2f}, {k / s[0]:.2f}]")
    r = ratios(times["TL model.generate (one run)"], times["sae.generate (default + steered)"])
    out.say(f"  tokens/s of sae.generate / TL generate, round by round: {Spread2(r.values)}")
    out.save()


def Spread2(values):
    vals = sorted(2 * v for v in values)
    return f"{vals[len(vals) // 2]:.2f} [{vals[0]:.2f}, {vals[-1]:.2f}] (n={len(vals)})"


if __name__ == "__main__":
    main()
