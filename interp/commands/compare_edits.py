"""interp compare-edits: the editing benchmark (interp/pipelines/compare_edits.py), layer by layer."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from analyses.edits_report import markdown
from interp.errors import InterpError
from interp.models import load_model
from interp.pipelines.compare_edits import EditConfig, check_request, compare_edits, parse_units
from interp.runlog import write_run_json
from interp.sites import check_context, parse_layers
from interp.tokens import token_windows


def _ladder(spec: str, name: str) -> tuple:
    try:
        return tuple(float(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise InterpError(f"cannot read {name} {spec!r}: give numbers like 0,1,2,5,10.") from None


def run(args) -> int:
    started = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    units = parse_units(args.units)
    for flag in ("units_per_layer", "promoted_k", "eval_tokens", "tokens", "stat_windows", "batch_size"):
        if getattr(args, flag) < 1:
            raise InterpError(f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}.")
    if args.sae_dir is not None and not Path(args.sae_dir).is_dir():
        raise InterpError(f"--sae-dir {args.sae_dir} is not a folder.")
    cfg = EditConfig(units=units, units_per_layer=args.units_per_layer, clamp_ladder=_ladder(args.clamp_ladder, "--clamp-ladder"),
                     add_ladder=_ladder(args.add_ladder, "--add-ladder"), promoted_k=args.promoted_k,
                     stat_windows=args.stat_windows, batch_size=args.batch_size, n_boot=args.n_boot, seed=args.seed,
                     arch=args.arch, k=args.k, expansion=args.expansion, sae_tokens=args.sae_tokens)
    model = load_model(args.model, device=args.device, processing=not args.no_processing)
    layers = parse_layers(args.layers, model.cfg.n_layers)
    check_request(model, layers, cfg)
    check_context(model, args.context_size)
    ctx = args.context_size

    def windows(split: str, tokens: int):
        w = token_windows(args.text, model.tokenizer, context_size=ctx, split=split, max_tokens=tokens)
        return w[: max(1, tokens // ctx)]

    train, held = windows("train", args.tokens), windows("heldout", args.eval_tokens)
    print(f"editing {', '.join(units)} of {model.cfg.model_name}, layers {','.join(map(str, layers))}: "
          f"{args.units_per_layer} units per layer and kind on {held.numel():,} held-out tokens")
    results = compare_edits(model, layers, train, held, args.out, cfg, sae_dir=args.sae_dir, readability=args.readability)
    write_run_json(args.out, vars(args) | {"func": None}, started, seconds_by_stage=results["seconds"])
    print(markdown(results))
    print(f"report: {(Path(args.out) / 'report.html').resolve()}")
    return 0
