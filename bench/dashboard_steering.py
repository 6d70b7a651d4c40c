"""The dashboard's steering examples per feature, before and after: before, every feature made both
continuations of every prompt (default and steered); after, each prompt's default is made once
(with the first feature's) and each feature makes only its steered one. Interleaved round by
round on the same features; the examples of the two must be equal.

    flock /work/logs/cpu.lock python bench/dashboard_steering.py [--model smollm2-135m] [--features 4]
        [--tokens 16] [--repeats 2] --threads 1

The SAE is a randomly initialised TopK SAE (8 x d_model latents, k 32) at blocks.L.hook_resid_post,
L = n_layers // 2, steered with Add of 5 x a max activation of 1 (speed does not depend on it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyses.dashboard.steering as steering
from analyses.dashboard.steering import DEFAULT_STEER_PROMPTS, SteerConfig, steering_examples, steering_unit
from bench.harness import interleave, ratios, start
from interp.models import load_model
from sae import SAEConfig, TrainConfig, create_sae, generate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--features", type=int, default=4)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    args, out = start(p, "dashboard_steering")
    model = load_model(args.model)
    model.requires_grad_(False)
    hook = f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"
    d = model.cfg.d_model
    sae = create_sae(SAEConfig("topk", d, 8 * d, k=32, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    sae.requires_grad_(False)
    cfg = SteerConfig(tuple(DEFAULT_STEER_PROMPTS), max_new_tokens=args.tokens)
    unit, feats = steering_unit("sae", hook, sae), list(range(args.features))
    got = {}

    def run(name, gen):
        steering.generate = gen
        got[name] = steering_examples(model, unit, feats, [1.0] * len(feats), cfg)

    fns = {"before (both runs per feature)": lambda: run("before", lambda *a, default=None, **kw: generate(*a, **kw)),
           "after (default once per prompt)": lambda: run("after", generate)}
    times = interleave(fns, args.repeats, warmup=0)
    steering.generate = generate
    out.say(f"{args.model} {hook}, {len(cfg.prompts)} prompts x {args.tokens} tokens, {args.features} features, "
            f"{torch.get_num_threads()} thread(s), {args.repeats} interleaved rounds")
    for name, ts in times.items():
        s = sorted(ts)
        out.say(f"  {name:<32} per feature: median {s[len(s) // 2] / args.features:.2f} s  "
                f"[min {s[0] / args.features:.2f}, max {s[-1] / args.features:.2f}]")
    r = ratios(times["after (default once per prompt)"], times["before (both runs per feature)"])
    out.say(f"  after / before, round by round: {r.fmt('.3f')}  (the first feature still makes the defaults: "
            f"(n + 1) / 2n = {(args.features + 1) / (2 * args.features):.3f} if the runs cost alike)")
    out.say(f"  examples equal: {got['before'] == got['after']}")
    out.save()


if __name__ == "__main__":
    main()
