"""interp compare-layers: neurons, SAE features and null bases, layer by layer (the CRATE-LM comparison)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from analyses.bases import parse_bases
from analyses.report import markdown
from analyses.scoring import ScoringConfig, make_scorers
from analyses.scoring.llm import make_llm
from interp.errors import InterpError
from interp.models import load_model
from interp.pipelines.compare_layers import DepthConfig, compare_layers
from interp.runlog import refuse_other_run, write_run_json
from interp.sites import check_context, parse_layers
from interp.tokens import token_windows
from sae.runs import check_architecture


def run(args) -> int:
    started = time.time()
    # more layers extend the same comparison (the finished ones are kept); anything else is another run
    refuse_other_run(args.out, vars(args) | {"func": None}, [Path(args.out) / "report.html"], args.overwrite, ignore=("layers",))
    if args.threads:
        torch.set_num_threads(args.threads)
    check_architecture(args.arch)
    bases = parse_bases(args.bases)
    if args.seeds < 1:
        raise InterpError(f"--seeds must be at least 1, not {args.seeds}.")
    if args.target_ev is not None and args.sae_token_cap is None:
        raise InterpError("--target-ev needs --sae-token-cap: the most tokens an SAE may train for.")
    if args.features_per_layer < 1:
        raise InterpError(f"--features-per-layer must be at least 1, not {args.features_per_layer}.")
    model = load_model(args.model, device=args.device, processing=not args.no_processing)
    layers = parse_layers(args.layers, model.cfg.n_layers)
    context_size = args.context_size
    check_context(model, context_size)

    def windows(split: str, tokens: int):
        w = token_windows(args.text, model.tokenizer, context_size=context_size, split=split, max_tokens=tokens)
        return w[: max(1, tokens // context_size)]

    train, heldout = windows("train", args.tokens), windows("heldout", args.heldout_tokens)
    scoring = ScoringConfig()
    explainer = simulator = cross = None
    if "llm" in (args.explainer, args.simulator, args.cross_check):
        if not (args.llm_backend and args.llm_model):
            raise InterpError("the llm explainer, simulator or cross-check needs --llm-backend and --llm-model.")
        # a local model generates only explanations (one sentence; its simulator reads slots, analyses/scoring/llm_slots.py)
        llm = make_llm(args.llm_backend, args.llm_model, base_url=args.llm_url, device=args.device,
                       max_new_tokens=64 if args.llm_backend == "hf" else 512)
        if "llm" in (args.explainer, args.simulator):
            explainer, simulator = make_scorers(args.explainer, args.simulator, llm=llm, tokenizer=model.tokenizer, cfg=scoring)
        if args.cross_check == "llm":
            if args.explainer == "llm":
                raise InterpError("--cross-check llm compares the LLM's scores with the token explainer's; leave --explainer at tokens.")
            cross = make_scorers("llm", "llm", llm=llm, tokenizer=model.tokenizer, cfg=scoring)
    if args.cross_check_units < 1:
        raise InterpError(f"--cross-check-units must be at least 1, not {args.cross_check_units}.")
    cfg = DepthConfig(site=args.site, arch=args.arch, k=args.k, expansion=args.expansion, sae_tokens=args.sae_tokens,
                      sae_batch_size=args.batch_size, lr=args.lr, features_per_layer=args.features_per_layer,
                      eval_tokens=args.eval_tokens, seed=args.seed, scoring=scoring, bases=tuple(bases), seeds=args.seeds,
                      target_ev=args.target_ev, sae_token_cap=args.sae_token_cap, fit_tokens=args.fit_tokens,
                      ica_components=args.ica_components, cross_check_units=args.cross_check_units if cross else 0)
    print(f"comparing {', '.join(bases)} of {model.cfg.model_name} at {args.site}, layers "
          f"{','.join(map(str, layers))}: {train.numel():,} train and {heldout.numel():,} held-out tokens, "
          f"{args.features_per_layer} units per dictionary, {args.seeds} seed(s)")
    results = compare_layers(model, layers, train, heldout, args.out, cfg, tokenizer=model.tokenizer,
                             explainer=explainer, simulator=simulator, cross=cross, overwrite=args.overwrite)
    write_run_json(args.out, vars(args) | {"func": None}, started, seconds_by_stage=results["seconds"])
    print(markdown(results))
    print(f"report: {(Path(args.out) / 'report.html').resolve()}")
    return 0
