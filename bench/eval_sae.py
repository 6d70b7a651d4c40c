"""`evaluate_sae` before and after: the old way runs three full forwards per batch (clean, SAE
spliced in, hook zero-ablated) and takes log-softmax seven times; the new way runs the clean pass
whole, keeping the input of the hook's block, starts the spliced pass there (start_at_layer), and
at a residual-stream hook runs the zero-ablated pass once per evaluation (sae/zero_ablation.py),
elsewhere from the hook's block on each batch. Both are timed interleaved, round by round, on the
same windows, and their metrics compared (goal: the new at most 0.6x the old, metrics equal to 1e-5).

    flock /work/logs/cpu.lock python bench/eval_sae.py [--layer 15] [--site hook_resid_post] [--skip-bos]
        [--windows 8] [--repeats 3] [--warmup 1]

The SAE is a randomly initialised TopK SAE (d_sae 8 x d_in, k 32) at blocks.L.<site> of
SmolLM2-135M: its speed and the agreement of the two paths do not depend on training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import interleave, ratios, start
from interp.models import load_model
from interp.tokens import token_windows
from sae import (
    SAEConfig,
    TrainConfig,
    create_sae,
    evaluate_sae,
    metrics,
)
from sae import evaluate as ev


@torch.no_grad()
def evaluate_before(sae: Any, model: Any, windows: torch.Tensor, hook_name: str, batch_size: int,
                    first: int = 0) -> dict[str, Any]:
    """The loop of sae/evaluate.py as it was before the shared prefix (main at b7cac4d), for the
    baseline; first = 1 keeps BOS clean in the splice and the ablation (skip_bos), as it did."""
    acc = ev._Sums(sae.cfg.d_in, sae.cfg.d_sae)
    for i in range(0, len(windows), batch_size):
        tokens = windows[i:i + batch_size]
        seen: dict[str, torch.Tensor] = {}

        def grab(act, hook):
            seen["x"] = act.detach().clone()

        clean_logits, ce_clean = model.run_with_hooks(tokens, return_type="both", fwd_hooks=[(hook_name, grab)])
        x = seen["x"]
        z = sae.encode(x)
        x_hat = sae.decode(z)
        if first:
            x_hat[:, 0] = x[:, 0]
        acc.add(x[:, first:].reshape(-1, sae.cfg.d_in), x_hat[:, first:].reshape(-1, sae.cfg.d_in),
                z[:, first:].reshape(-1, sae.cfg.d_sae))
        hook = metrics.splice_hook(sae, x_hat)
        sae_logits, ce_sae = model.run_with_hooks(tokens, return_type="both", fwd_hooks=[(hook_name, hook)])
        zero_logits, ce_zero = model.run_with_hooks(tokens, return_type="both", fwd_hooks=[(hook_name, metrics.zero_hook(first))])
        acc.add_losses(len(tokens), float(ce_clean), float(ce_sae), float(ce_zero),
                       metrics._kl(clean_logits, sae_logits).sum(), metrics._kl(clean_logits, zero_logits).sum(),
                       clean_logits.shape[0] * clean_logits.shape[1])
    return acc.result(0.1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--site", default="hook_resid_post", help="hook_resid_post, hook_mlp_out, mlp.hook_post, ...")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--skip-bos", action="store_true", help="keep BOS clean, as SAEs trained here do by default")
    args, out = start(p, "eval_sae")
    model = load_model(args.model)
    hook = f"blocks.{args.layer}.{args.site}"
    d = model.cfg.d_mlp if args.site.startswith("mlp.") else model.cfg.d_model
    sae = create_sae(SAEConfig("topk", d, 8 * d, k=32, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    sae.requires_grad_(False)
    windows = token_windows("offline", model.tokenizer, context_size=args.context, split="heldout",
                            max_tokens=args.windows * args.context)[:args.windows]
    got: dict[str, dict] = {}
    fns = {
        "before (3 full forwards)": lambda: got.__setitem__("before", evaluate_before(sae, model, windows, hook, args.batch_size,
                                                                                     int(args.skip_bos))),
        "after (one clean + suffix)": lambda: got.__setitem__("after", evaluate_sae(sae, model, windows, batch_size=args.batch_size,
                                                                              skip_bos=args.skip_bos)),
    }
    times = interleave(fns, args.repeats, warmup=args.warmup)
    out.say(f"{args.model} {hook}, {len(windows)} windows x {args.context} tokens, batch {args.batch_size}, skip_bos {args.skip_bos}, "
            f"{args.repeats} interleaved rounds after {args.warmup} warm-up")
    for name, ts in times.items():
        s = sorted(ts)
        out.say(f"  {name:<26} median {s[len(s) // 2]:.2f} s  [min {s[0]:.2f}, max {s[-1]:.2f}]")
    r = ratios(times["after (one clean + suffix)"], times["before (3 full forwards)"])
    out.say(f"  after / before, round by round: {r.fmt('.3f')}  (goal <= 0.6)")
    worst = max((abs(got["after"][k] - v), k) for k, v in got["before"].items() if isinstance(v, float))
    out.say(f"  largest difference of any metric: {worst[0]:.2e} ({worst[1]}); goal 1e-5")
    for k in ("ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation", "kl_div_with_sae", "ce_loss_score",
              "explained_variance"):
        out.say(f"    {k:<24} before {got['before'][k]:.6f}  after {got['after'][k]:.6f}")
    out.save()


if __name__ == "__main__":
    main()
