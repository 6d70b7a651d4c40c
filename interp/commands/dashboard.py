"""interp dashboard: feature dashboards for an SAE (or a layer's neurons) as static HTML.

    interp dashboard SAE_DIR --cache ACT_DIR --out DIR              activations already recorded
    interp dashboard SAE_DIR --tokens 100000 --out DIR              record held-out text first
    interp dashboard --neurons --model M --layer L --site mlp_post --cache ACT_DIR --out DIR

The prompt view is precomputed: a few default prompts plus `--prompts FILE` (one prompt per line,
or a .json list of strings) are run through the model when the dashboard is built, so the folder
needs no server and opens from disk. Explanations and scores (issue 5) are read from
`explanations.json` next to the SAE, or from --explanations FILE."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from interp.errors import InterpError
from interp.sites import SITES, check_context


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dashboard",
        help="build feature dashboards (static HTML) for an SAE or a layer's neurons",
        description="Compute per-feature statistics (top examples with context, samples from activation bands, "
        "density, histograms, logit effects, nearest features) in one pass over an activation cache, and write "
        "an index page, one page per feature and a prompt view as static HTML that opens from disk with no network.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("sae_dir", nargs="?", metavar="SAE_DIR", help="the SAE folder (cfg.json + sae_weights.safetensors); omit with --neurons")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cache", metavar="ACT_DIR", help="an activation cache written by `interp record` that holds the SAE's hook")
    src.add_argument("--tokens", type=int, metavar="N", help="record N tokens of held-out text into OUT/acts first")
    p.add_argument("--out", required=True, metavar="DIR", help="the dashboard folder to write (index.html inside)")
    p.add_argument("--features", default="all", help="which features: 'all', a range '0-99', a list '1,5,9' or a mix")
    p.add_argument("--neurons", action="store_true", help="dashboards for a layer's neurons (the identity dictionary) instead of an SAE")
    p.add_argument("--model", default=None, help="model name or folder; when not given, the SAE's model_name, else the cache's model")
    p.add_argument("--layer", type=int, default=None, help="with --neurons: the layer")
    p.add_argument("--site", default="mlp_post", choices=list(SITES), help="with --neurons: which activation of the layer")
    p.add_argument("--no-model", action="store_true", help="do not load the model: no logit effects, no prompt view, token ids instead of text")
    p.add_argument("--prompts", default=None, metavar="FILE", help="prompts for the prompt view, added to the defaults")
    p.add_argument("--no-default-prompts", action="store_true", help="use only the prompts of --prompts")
    p.add_argument("--explanations", default=None, metavar="FILE", help="explanations and scores; when not given, SAE_DIR/explanations.json if it exists")
    p.add_argument("--text", default="offline", help="with --tokens: the text source")
    p.add_argument("--split", default="heldout", choices=["train", "heldout", "all"], help="with --tokens: which documents of the text source")
    p.add_argument("--context-size", type=int, default=128, help="with --tokens: tokens per window")
    p.add_argument("--top", type=int, default=20, help="top activating examples per feature")
    p.add_argument("--bands", type=int, default=10, help="activation bands of [0, max] to sample from")
    p.add_argument("--per-band", type=int, default=5, help="examples sampled from each band")
    p.add_argument("--title", default=None, help="the dashboard's title (default: the SAE folder's name)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm.auto import tqdm

    from analyses.dashboard import make_dashboard, read_explanations
    from analyses.dictionary import neuron_dictionary, sae_dictionary
    from analyses.features import FeatureStatsConfig, parse_features
    from analyses.prompts import read_prompts
    from interp.runlog import write_run_json
    from interp.store import ActivationCache

    started = time.time()
    out = Path(args.out)
    if args.neurons and args.sae_dir:
        raise InterpError("give either SAE_DIR or --neurons, not both.")
    if args.neurons and (args.layer is None or args.no_model):
        raise InterpError("--neurons needs the model's weights: give --model M and --layer L (and no --no-model).")
    if not args.neurons and not args.sae_dir:
        raise InterpError("give the SAE folder (SAE_DIR), or --neurons with --model and --layer.")
    cache = ActivationCache(args.cache) if args.cache else None
    model = None

    if args.neurons:
        model_name = args.model or (cache.model_name if cache else None)
        if model_name is None:
            raise InterpError("--neurons needs --model M (the model whose neurons to show).")
        model = _load_model(model_name, args.device)
        from interp.sites import hook_name

        dictionary = neuron_dictionary(model, hook_name(args.site, args.layer))
        title = args.title or f"{model.cfg.model_name} layer {args.layer} {args.site} neurons"
        explanations_file = args.explanations
    else:
        from sae import load_sae

        dictionary = sae_dictionary(load_sae(args.sae_dir, device=args.device))
        title = args.title or Path(args.sae_dir).resolve().name
        explanations_file = args.explanations or Path(args.sae_dir) / "explanations.json"
        model_name = args.model or dictionary.model_name or (cache.model_name if cache else None)
        if not args.no_model:
            if not model_name:
                raise InterpError("the SAE's cfg.json names no model: give --model M, or --no-model.")
            model = _load_model(model_name, args.device)

    if cache is None:
        if model is None:
            raise InterpError("--tokens records activations and so needs the model: drop --no-model, or pass --cache.")
        from interp.recording import record
        from interp.tokens import token_windows

        check_context(model, args.context_size)
        windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split=args.split, max_tokens=args.tokens)
        windows = windows[: max(1, args.tokens // args.context_size)]
        cache = record(model, windows, [dictionary.hook_name], out / "acts", header={"source": args.text, "split": args.split})
    elif dictionary.model_name and cache.model_name and dictionary.model_name != cache.model_name:
        print(f"interp: warning: the SAE was trained on {dictionary.model_name} but the cache holds {cache.model_name}'s activations.", file=sys.stderr)

    features = parse_features(args.features, dictionary.n_features)
    cfg = FeatureStatsConfig(n_top=args.top, n_bands=args.bands, per_band=args.per_band)
    prompts = read_prompts(args.prompts, defaults=not args.no_default_prompts) if model is not None else None
    explanations = read_explanations(explanations_file)
    bar = tqdm(total=cache.n_tokens, unit="tok", unit_scale=True, desc="features")

    def progress(n: int) -> None:  # the pass is what takes time; close the bar when it ends
        bar.update(n)
        if bar.n >= bar.total:
            bar.close()

    try:
        index, stats = make_dashboard(dictionary, cache, out, model=model, features=features, cfg=cfg, prompts=prompts,
                                      explanations=explanations, title=title, progress=progress, device=_device_of(dictionary))
    finally:
        bar.close()
    secs = time.time() - started
    write_run_json(out, vars(args) | {"func": None}, started, n_features=len(features), n_tokens=stats.meta["n_tokens"],
                   timings=stats.meta["timings"], features_per_second=round(len(features) / secs, 2))
    t = stats.meta["timings"]
    print(f"{len(features):,} {'neurons' if args.neurons else 'features'} over {stats.meta['n_tokens']:,} tokens in {secs:.1f} s "
          f"(pass {t['pass']:.1f} s, weights {t['weights']:.1f} s, prompts {t['prompts']:.1f} s, pages {t['render']:.1f} s)")
    print(index.resolve())
    return 0


def _load_model(name: str, device):
    from interp.models import load_model

    return load_model(name, device=device)


def _device_of(dictionary):
    """Where the dictionary's encoder lives: activations go there to be encoded."""
    owner = getattr(dictionary.encode, "__self__", None)  # an SAE's bound encode method
    return owner.W_enc.device if owner is not None and hasattr(owner, "W_enc") else None
