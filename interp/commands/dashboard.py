"""interp dashboard: feature dashboards for an SAE (or a layer's neurons) as static HTML.

    interp dashboard SAE_DIR --cache ACT_DIR --out DIR              activations already recorded
    interp dashboard SAE_DIR --tokens 100000 --out DIR              record held-out text first
    interp dashboard --neurons --model M --layer L --site mlp_post --cache ACT_DIR --out DIR

The prompt view is precomputed: a few default prompts plus `--prompts FILE` (one prompt per line,
or a .json list of strings) are run through the model when the dashboard is built, so the folder
needs no server and opens from disk. Explanations and scores (analyses/scoring) are read from
`explanations.json` next to the SAE, or from --explanations FILE."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from analyses.dashboard import make_dashboard, read_explanations
from analyses.dashboard.steering import DEFAULT_STEER_PROMPTS, SteerConfig, check_steering, steering_unit
from analyses.dictionary import neuron_dictionary, sae_dictionary
from analyses.features import FeatureStatsConfig, parse_features
from analyses.prompts import read_prompts
from interp.errors import InterpError
from interp.models import check_processing, find_model, load_model
from interp.models.processing import describe, effective
from interp.recording import record
from interp.runlog import refuse_other_run, write_run_json
from interp.sites import check_context, hook_name, hook_width
from interp.store import ActivationStore
from interp.tokens import token_windows
from sae import load_sae


def run(args) -> int:
    started = time.time()
    out = Path(args.out)
    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    refuse_other_run(out, config, [out / "index.html"], args.overwrite)
    steering = _steering(args)
    if steering is not None and args.no_model:
        raise InterpError("--steer-prompts runs the model: drop --no-model.")
    if args.neurons and args.sae_dir:
        raise InterpError("give either SAE_DIR or --neurons, not both.")
    if args.neurons and (args.layer is None or args.no_model):
        raise InterpError("--neurons needs the model's weights: give --model M and --layer L (and no --no-model).")
    if not args.neurons and not args.sae_dir:
        raise InterpError("give the SAE folder (SAE_DIR), or --neurons with --model and --layer.")
    cache = ActivationStore(args.cache) if args.cache else None
    model = None

    if args.neurons:
        model_name = args.model or (find_model(cache.model_name, cache.model_path) if cache else None)
        if model_name is None:
            raise InterpError("--neurons needs --model M (the model whose neurons to show).")
        model = _load_model(model_name, args, cache)

        dictionary = neuron_dictionary(model, hook_name(args.site, args.layer))
        title = args.title or f"{model.cfg.model_name} layer {args.layer} {args.site} neurons"
        explanations_file = args.explanations
    else:

        sae = load_sae(args.sae_dir, device=args.device)
        dictionary = sae_dictionary(sae)
        title = args.title or Path(args.sae_dir).resolve().name
        explanations_file = args.explanations or Path(args.sae_dir) / "explanations.json"
        sae_path = sae.cfg.extra.get("model_path")
        sae_processing = sae.cfg.extra.get("model_from_pretrained_kwargs")
        if cache is not None and not args.model:
            _check_same_model(args.sae_dir, sae.cfg.model_name, sae_path, cache)
        if cache is not None:
            _check_cache_processing(args.sae_dir, sae_processing, cache)
        if cache is not None and dictionary.hook_name in cache.hooks and cache.hooks[dictionary.hook_name] != sae.cfg.d_in:
            raise InterpError(f"the SAE reads {sae.cfg.d_in} numbers at {dictionary.hook_name} but the cache at {cache.path} "
                              f"holds {cache.hooks[dictionary.hook_name]} there: they come from different models.")
        if not args.no_model:
            if args.model:
                model_name = args.model
            elif sae.cfg.model_name or sae_path:
                model_name = find_model(sae.cfg.model_name, sae_path)
            elif cache is not None:
                model_name = find_model(cache.model_name, cache.model_path)
            else:
                raise InterpError("the SAE's cfg.json names no model: give --model M, or --no-model.")
            model = _load_model(model_name, args, cache)
            _check_width(model, sae)
            check_processing(f"the SAE at {args.sae_dir}", sae_processing, model)

    if cache is None:
        if model is None:
            raise InterpError("--tokens records activations and so needs the model: drop --no-model, or pass --cache.")

        check_context(model, args.context_size)
        windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split=args.split, max_tokens=args.tokens)
        windows = windows[: max(1, args.tokens // args.context_size)]
        cache = record(model, windows, [dictionary.hook_name], out / "acts", header={"source": args.text, "split": args.split})

    features = parse_features(args.features, dictionary.n_features)
    cfg = FeatureStatsConfig(n_top=args.top, n_bands=args.bands, per_band=args.per_band)
    prompts = read_prompts(args.prompts, defaults=not args.no_default_prompts) if model is not None else None
    explanations = read_explanations(explanations_file)
    steer_unit = None
    if steering is not None:
        check_steering(model, steering)
        steer_unit = steering_unit(dictionary.kind, dictionary.hook_name, None if args.neurons else sae, model.cfg.d_model)
    cache.check([dictionary.hook_name])  # a bad shard is refused before the pass (and its progress bar) starts
    bar = tqdm(total=cache.n_tokens, unit="tok", unit_scale=True, desc="features")

    def progress(n: int) -> None:  # the pass is what takes time; close the bar when it ends
        bar.update(n)
        if bar.n >= bar.total:
            bar.close()

    try:
        index, stats = make_dashboard(dictionary, cache, out, model=model, features=features, cfg=cfg, prompts=prompts,
                                      explanations=explanations, title=title, progress=progress, device=_device_of(dictionary),
                                      steering=steering, steer_unit=steer_unit, steer_progress=_steer_bar(steering, len(features)))
    finally:
        bar.close()
    secs = time.time() - started
    write_run_json(out, config, started, n_features=len(features), n_tokens=stats.meta["n_tokens"],
                   timings=stats.meta["timings"], features_per_second=round(len(features) / secs, 2))
    t = stats.meta["timings"]
    print(f"{len(features):,} {'neurons' if args.neurons else 'features'} over {stats.meta['n_tokens']:,} tokens in {secs:.1f} s "
          f"(pass {t['pass']:.1f} s, weights {t['weights']:.1f} s, prompts {t['prompts']:.1f} s"
          + (f", steering {t['steering']:.1f} s = {t['steering'] / max(1, len(features)):.2f} s per feature" if "steering" in t else "")
          + f", pages {t['render']:.1f} s)")
    print(index.resolve())
    return 0


def _config(args) -> dict:
    """What run.json records; the --steer-* settings only when steering was asked for, so that a
    dashboard without it records (and is compared on) exactly what it did before they existed."""
    config = vars(args) | {"func": None}
    if args.steer_prompts is None:
        config = {k: v for k, v in config.items() if not k.startswith("steer_")}
    return config


def _steering(args) -> SteerConfig | None:
    if args.steer_prompts is None:
        return None
    prompts = DEFAULT_STEER_PROMPTS if args.steer_prompts == "default" else read_prompts(args.steer_prompts, defaults=False)
    return SteerConfig(tuple(prompts), args.steer_strength, args.steer_mode, args.steer_tokens, args.steer_seed, args.steer_temperature)


def _steer_bar(steering, n: int):
    if steering is None:
        return None
    bar = tqdm(total=n, unit="feature", desc="steering")

    def step(k: int) -> None:
        bar.update(k)
        if bar.n >= bar.total:
            bar.close()
    return step


def _check_same_model(sae_dir, name: str, path: str | None, cache: ActivationStore) -> None:
    """An SAE read on another model's activations gives meaningless dashboards: refuse it."""
    if path and cache.model_path:
        same = Path(path) == Path(cache.model_path)
    else:
        same = not name or not cache.model_name or name == cache.model_name
    if not same:
        raise InterpError(f"the SAE at {sae_dir} was trained on {path or name} but the cache at {cache.path} holds "
                          f"{cache.model_path or cache.model_name}'s activations; give a cache of the SAE's model.")


def _check_cache_processing(sae_dir, sae_processing: dict | None, cache: ActivationStore) -> None:
    """An SAE read on activations of the same model otherwise processed gives meaningless dashboards too."""
    theirs = cache_processing(cache)
    if sae_processing is not None and theirs is not None and effective(sae_processing) != effective(theirs):
        raise InterpError(f"the SAE at {sae_dir} read activations with {describe(sae_processing)} but the cache at "
                          f"{cache.path} holds activations with {describe(theirs)}; give a cache recorded as the "
                          "SAE's training data was (with or without --no-processing).")


def _check_width(model, sae) -> None:
    width = hook_width(model, sae.cfg.hook_name)
    if width != sae.cfg.d_in:
        raise InterpError(f"the SAE reads {sae.cfg.d_in} numbers at {sae.cfg.hook_name} but {model.cfg.model_name} has "
                          f"{width} there: the SAE belongs to another model or hook; give its own --model.")


def _load_model(name: str, args, cache: ActivationStore | None):
    """The model, processed as asked; a cache recorded from it otherwise processed is refused."""
    model = load_model(name, device=args.device, processing=not args.no_processing)
    if cache is not None:
        check_processing(f"the cache at {cache.path}", cache_processing(cache), model)
    return model


def cache_processing(cache: ActivationStore) -> dict | None:
    return cache.manifest.get("header", {}).get("model_from_pretrained_kwargs")


def _device_of(dictionary):
    """Where the dictionary's encoder lives: activations go there to be encoded."""
    owner = getattr(dictionary.encode, "__self__", None)  # an SAE's bound encode method
    return owner.W_enc.device if owner is not None and hasattr(owner, "W_enc") else None
