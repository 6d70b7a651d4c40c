"""interp eval-sae: reconstruction, sparsity and spliced-in loss metrics of a saved SAE."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval-sae",
        help="evaluate a saved SAE on held-out text: metrics.json and a table",
        description="Run held-out text through the SAE's model, splice the SAE's reconstruction in at its hook, "
        "and report l0, mse, explained_variance, fvu, cosine, l2_ratio, ce_loss_score, kl_div_score, dead and "
        "dense fractions (SAELens names). Writes DIR/metrics.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("sae_dir", help="an SAE folder (cfg.json + sae_weights.safetensors), ours or SAELens's")
    p.add_argument("--model", default=None, help="model to evaluate in (default: the SAE's model_name)")
    p.add_argument("--text", default="offline", help="text source")
    p.add_argument("--split", default="heldout", choices=["train", "heldout", "all"])
    p.add_argument("--tokens", type=int, default=32_768, help="held-out tokens to evaluate on")
    p.add_argument("--context-size", type=int, default=None, help="default: the SAE's training context size, else 128")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="where to write metrics.json (default: the SAE folder)")
    p.set_defaults(func=run)


TABLE = ["l0", "explained_variance", "fvu", "mse", "cosine", "l2_ratio", "ce_loss_without_sae", "ce_loss_with_sae",
         "ce_loss_with_ablation", "ce_loss_score", "kl_div_score", "dead_fraction", "dense_fraction"]


def run(args) -> int:
    from sae import evaluate_sae, load_sae

    from interp.models import load_model
    from interp.runlog import write_run_json
    from interp.files import write_json_atomic
    from interp.sites import check_context
    from interp.tokens import token_windows

    started = time.time()
    sae = load_sae(args.sae_dir)
    model = load_model(args.model or sae.cfg.model_name, device=args.device)
    sae = sae.to(next(model.parameters()).device)
    ctx = args.context_size or sae.cfg.extra.get("context_size") or 128
    check_context(model, ctx)
    windows = token_windows(args.text, model.tokenizer, context_size=ctx, split=args.split, max_tokens=args.tokens)
    metrics = evaluate_sae(sae, model, windows, batch_size=args.batch_size, progress=True)
    out = Path(args.out or args.sae_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    write_run_json(out / "eval", vars(args) | {"func": None}, started)
    print(f"{sae.cfg.architecture} SAE {args.sae_dir} at {sae.cfg.hook_name} of {model.cfg.model_name}, "
          f"{metrics['n_tokens']:,} {args.split} tokens")
    for key in TABLE:
        if key in metrics:
            v = metrics[key]
            print(f"  {key:<24} {v:>10.4f}" if isinstance(v, float) else f"  {key:<24} {v!s:>10}")
    print(f"wrote {out / 'metrics.json'}")
    return 0
