"""interp compare-layers: neurons vs SAE features, layer by layer (the CRATE-LM comparison)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp.sites import SITES, check_context


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare-layers",
        help="score neurons, SAE features and null bases at every layer: a depth report (HTML + markdown)",
        description="Record train and held-out activations of every requested layer (one forward pass per split), "
        "train --seeds SAEs per layer from that recording (optionally to a matched held-out EV), then per layer: "
        "the SAEs' quality and the four interpretability scores of the same number of sampled live units of every basis "
        "(--bases: neurons, SAE features and nulls), explained on the train split and simulated on the same held-out "
        "text for every layer, each with a 95% bootstrap CI and minus the random-direction null of the same layer. Writes OUT/report.html, OUT/report.md and "
        "OUT/results.json. Rerunning the same command skips finished layers; adding layers scores only the new ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="smollm2-135m", help="model name (smollm2-135m, gpt2, ...) or a local folder")
    p.add_argument("--layers", default="all", help="'all', a list like 0,4,8, or a range like 0-3")
    p.add_argument("--site", default="mlp_post", choices=list(SITES), help="which activation of each block")
    p.add_argument("--arch", default="topk", help="SAE architecture: relu | topk | batchtopk | jumprelu")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk, batchtopk)")
    p.add_argument("--expansion", type=int, default=4, help="d_sae = expansion * d_in")
    p.add_argument("--tokens", type=int, default=100_000, help="train-split tokens recorded (trains the SAEs, explains the features)")
    p.add_argument("--heldout-tokens", type=int, default=30_000, help="held-out tokens recorded (scores every layer)")
    p.add_argument("--sae-tokens", type=int, default=None, help="SAE training tokens (default: one epoch of --tokens)")
    p.add_argument("--batch-size", type=int, default=1024, help="SAE training batch, in tokens")
    p.add_argument("--lr", type=float, default=None, help="SAE learning rate (default: the trainer's)")
    p.add_argument("--features-per-layer", type=int, default=100,
                   help="live units scored per layer and dictionary (each basis, each seed)")
    p.add_argument("--bases", default="neurons,sae,random,pca",
                   help="comma-separated: neurons, sae, random, rotated, pca, ica, sae-random-model (analyses/bases.py)")
    p.add_argument("--seeds", type=int, default=1, help="SAEs (and random bases) per layer, with seeds seed, seed+1, ...")
    p.add_argument("--target-ev", type=float, default=None,
                   help="train each SAE in rounds of --sae-tokens until its held-out EV reaches this (or --sae-token-cap)")
    p.add_argument("--sae-token-cap", type=int, default=None, help="with --target-ev: the most tokens an SAE trains for")
    p.add_argument("--fit-tokens", type=int, default=16384, help="train tokens PCA and ICA are fitted on")
    p.add_argument("--ica-components", type=int, default=128, help="FastICA components (at most the site's width)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for the SAE's quality metrics")
    p.add_argument("--explainer", default="tokens", choices=["tokens", "llm"], help="tokens: deterministic, no LLM")
    p.add_argument("--simulator", default="tokens", choices=["tokens", "llm"])
    p.add_argument("--llm-backend", default=None, choices=["openai", "hf"], help="with llm: an OpenAI-compatible endpoint or a local HF model")
    p.add_argument("--llm-model", default=None, help="with llm: the endpoint's model name, or a local model (e.g. smollm2-135m)")
    p.add_argument("--llm-url", default=None, help="with --llm-backend openai: the endpoint's base URL")
    p.add_argument("--text", default="offline", help="text source: 'offline', a file, folder or glob, or a Hugging Face dataset name")
    p.add_argument("--context-size", type=int, default=128, help="tokens per window")
    p.add_argument("--seed", type=int, default=0, help="seeds the feature samples, the SAEs and the random examples")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", required=True, help="the comparison's folder (created, or resumed)")
    p.set_defaults(func=run)


def run(args) -> int:
    from analyses.depth import DepthConfig, compare_layers
    from analyses.report import markdown
    from analyses.scoring import ScoringConfig, make_scorers
    from interp.errors import InterpError
    from interp.models import load_model
    from interp.runlog import write_run_json
    from interp.sae_runs import check_architecture
    from interp.sites import parse_layers
    from interp.tokens import token_windows

    from analyses.bases import parse_bases

    started = time.time()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    check_architecture(args.arch)
    bases = parse_bases(args.bases)
    if args.seeds < 1:
        raise InterpError(f"--seeds must be at least 1, not {args.seeds}.")
    if args.target_ev is not None and args.sae_token_cap is None:
        raise InterpError("--target-ev needs --sae-token-cap: the most tokens an SAE may train for.")
    if args.features_per_layer < 1:
        raise InterpError(f"--features-per-layer must be at least 1, not {args.features_per_layer}.")
    model = load_model(args.model, device=args.device)
    layers = parse_layers(args.layers, model.cfg.n_layers)
    ctx = args.context_size
    check_context(model, ctx)

    def windows(split: str, tokens: int):
        w = token_windows(args.text, model.tokenizer, context_size=ctx, split=split, max_tokens=tokens)
        return w[: max(1, tokens // ctx)]

    train, heldout = windows("train", args.tokens), windows("heldout", args.heldout_tokens)
    scoring = ScoringConfig()
    explainer = simulator = None
    if "llm" in (args.explainer, args.simulator):
        from analyses.scoring.llm import make_llm

        if not (args.llm_backend and args.llm_model):
            raise InterpError("the llm explainer or simulator needs --llm-backend and --llm-model.")
        llm = make_llm(args.llm_backend, args.llm_model, base_url=args.llm_url, device=args.device)
        explainer, simulator = make_scorers(args.explainer, args.simulator, llm=llm, tokenizer=model.tokenizer, cfg=scoring)
    cfg = DepthConfig(site=args.site, arch=args.arch, k=args.k, expansion=args.expansion, sae_tokens=args.sae_tokens,
                      sae_batch_size=args.batch_size, lr=args.lr, features_per_layer=args.features_per_layer,
                      eval_tokens=args.eval_tokens, seed=args.seed, scoring=scoring, bases=tuple(bases), seeds=args.seeds,
                      target_ev=args.target_ev, sae_token_cap=args.sae_token_cap, fit_tokens=args.fit_tokens,
                      ica_components=args.ica_components)
    print(f"comparing {', '.join(bases)} of {model.cfg.model_name} at {args.site}, layers "
          f"{','.join(map(str, layers))}: {train.numel():,} train and {heldout.numel():,} held-out tokens, "
          f"{args.features_per_layer} units per dictionary, {args.seeds} seed(s)")
    results = compare_layers(model, layers, train, heldout, args.out, cfg, tokenizer=model.tokenizer,
                             explainer=explainer, simulator=simulator)
    write_run_json(args.out, vars(args) | {"func": None}, started, seconds_by_stage=results["seconds"])
    print(markdown(results))
    print(f"report: {(Path(args.out) / 'report.html').resolve()}")
    return 0
