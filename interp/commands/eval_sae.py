"""interp eval-sae: reconstruction, sparsity and spliced-in loss metrics of a saved SAE."""

from __future__ import annotations

import time
from pathlib import Path

from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.models import check_processing, find_model, load_model
from interp.runlog import refuse_other_run, write_run_json
from interp.sites import check_context, hook_width
from interp.tokens import token_windows
from sae import evaluate_sae, load_sae

TABLE = ["l0", "explained_variance", "fvu", "mse", "cosine", "l2_ratio", "ce_loss_without_sae", "ce_loss_with_sae",
         "ce_loss_with_ablation", "ce_loss_score", "kl_div_score", "dead_fraction", "dense_fraction"]


def run(args) -> int:
    started = time.time()
    out = Path(args.out or args.sae_dir)
    refuse_other_run(out / "eval", vars(args) | {"func": None}, [out / "metrics.json"], args.overwrite)
    sae = load_sae(args.sae_dir)
    model = load_model(args.model or find_model(sae.cfg.model_name, sae.cfg.extra.get("model_path")), device=args.device,
                       processing=not args.no_processing)
    check_processing(f"the SAE at {args.sae_dir}", sae.cfg.extra.get("model_from_pretrained_kwargs"), model)
    width = hook_width(model, sae.cfg.hook_name)
    if width != sae.cfg.d_in:
        raise InterpError(f"the SAE reads {sae.cfg.d_in} numbers at {sae.cfg.hook_name} but {model.cfg.model_name} has "
                          f"{width} there: the SAE belongs to another model or hook; give its own --model.")
    sae = sae.to(next(model.parameters()).device)
    context_size = args.context_size or sae.cfg.extra.get("context_size") or 128
    check_context(model, context_size)
    windows = token_windows(args.text, model.tokenizer, context_size=context_size, split=args.split, max_tokens=args.tokens)
    metrics = evaluate_sae(sae, model, windows, batch_size=args.batch_size, progress=True)
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
