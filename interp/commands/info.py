"""interp info: what an activation cache holds, with a few statistics per hook."""

from __future__ import annotations

import numpy as np

from interp.models import OFFLINE_MODELS, is_fetched, offline_model_dir
from interp.models.converted import _tokenizer as folder_tokenizer
from interp.store import ActivationStore


def run(args) -> int:
    cache = ActivationStore(args.cache)
    if not args.no_verify:
        cache.verify()
    m = cache.manifest
    state = "complete" if m.get("complete") else "partial (rerun `interp record` with the same --out to resume)"
    print(f"{cache.path}: {m['model']}, {cache.n_tokens:,} tokens in {cache.n_windows} windows of {cache.context_size}, "
          f"{len(cache.shards)} shards, {m['dtype']}, {state}")
    if not cache.shards:
        return 0
    print(f"{'hook':<34} {'d':>6} {'mean |x|':>10} {'mean x':>9} {'std x':>9}")
    for hook, d in cache.hooks.items():
        a = np.asarray(cache.shard_acts(0, hook), dtype=np.float64)
        print(f"{hook:<34} {d:>6} {np.linalg.norm(a, axis=1).mean():>10.3f} {a.mean():>9.4f} {a.std():>9.4f}")
    tok = _tokenizer(m["model"])
    if tok is not None:
        text = tok.decode(cache.shard_tokens(0)[0][:48].tolist())
        print(f"first window: {text!r}")
    return 0


def _tokenizer(model_name: str):
    """The tokenizer of an offline model, to show text; None for other models (ids are enough)."""

    if model_name in OFFLINE_MODELS and is_fetched(model_name):
        return folder_tokenizer(offline_model_dir(model_name))
    return None
