"""Feature dashboards: statistics from one pass over an activation cache, written as static HTML.

`make_dashboard` is the whole job (what `interp dashboard` runs once it has loaded its inputs);
`build_dashboard` only renders FeatureStats that were computed before."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from analyses.dashboard.build import build_dashboard, read_explanations, tokenizer_strings
from analyses.dashboard.steering import SteerConfig, steering_examples
from analyses.dictionary import Dictionary
from analyses.features import FeatureStats, FeatureStatsConfig, compute_feature_stats
from analyses.logits import weight_stats
from analyses.prompts import prompt_activations

__all__ = ["SteerConfig", "build_dashboard", "make_dashboard", "read_explanations", "tokenizer_strings"]


def make_dashboard(
    dictionary: Dictionary,
    cache,  # interp.store.ActivationStore
    out: str | Path,
    model=None,  # HookedTransformer for logit effects and the prompt view (None: neither)
    tokenizer=None,  # token text; defaults to model.tokenizer
    features: torch.Tensor | None = None,
    cfg: FeatureStatsConfig = FeatureStatsConfig(),
    prompts: list[str] | None = None,
    explanations: dict[int, dict] | None = None,
    title: str = "dashboard",
    windows_per_batch: int | None = None,
    progress=None,
    device=None,  # where to encode (default cpu)
    steering: SteerConfig | None = None,  # steering examples on each feature page (needs model and steer_unit)
    steer_unit=None,  # feature id -> the sae unit to steer (analyses/dashboard/steering.py: steering_unit)
    steer_progress=None,  # called with 1 after each feature's steering example
) -> tuple[Path, FeatureStats]:
    """Statistics for `features` (default all) in one pass over `cache`, saved next to the HTML
    (`out/stats/`), then the dashboard. Returns (index.html, stats)."""
    out = Path(out)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    wpb = windows_per_batch or max(1, 4096 // cache.context_size)
    timings = {}
    t0 = time.perf_counter()
    stats = compute_feature_stats(dictionary, cache.iter_windows([dictionary.hook_name], wpb), features, cfg, device=device, progress=progress)
    timings["pass"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    stats.tensors.update(weight_stats(model, dictionary, stats.features, cfg.n_logits, cfg.n_neighbours))
    timings["weights"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    prompt_data = None
    if prompts and model is not None and tokenizer is not None:
        prompt_data = prompt_activations(model, dictionary, prompts, tokenizer, stats.features)
    timings["prompts"] = time.perf_counter() - t2
    steer_data = None
    if steering is not None and model is not None and steer_unit is not None:
        t4 = time.perf_counter()
        steer_data = steering_examples(model, steer_unit, stats.features.tolist(), stats["max"].tolist(), steering, steer_progress)
        timings["steering"] = time.perf_counter() - t4
    stats.meta.update(cache=str(cache.path), title=title)
    stats.save(out / "stats")
    t3 = time.perf_counter()
    strings = tokenizer_strings(tokenizer) if tokenizer is not None else (lambda ids: {i: f"<{i}>" for i in ids})
    index = build_dashboard(stats, out, strings, explanations, prompt_data, title, steer_data, steering)
    timings["render"] = time.perf_counter() - t3
    stats.meta["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return index, stats
