"""interp record: activations at many layers, from one forward pass, into a disk cache."""

from __future__ import annotations

import time

from interp import distributed
from interp.allocator import keep_freed_memory
from interp.models import load_model
from interp.recording import record
from interp.runlog import write_run_json
from interp.sites import check_context, hook_name, parse_layers
from interp.tokens import token_windows


def run(args) -> int:
    with distributed.session(args.device) as device:
        return _record(args, device)


def _record(args, device) -> int:
    started = time.time()
    keep_freed_memory()  # each batch's forward reuses the last one's memory instead of faulting in fresh pages
    with distributed.main_first():  # rank 0 fills the model and token caches; the others then read them
        model = load_model(args.model, device=device, processing=not args.no_processing)
    layers = parse_layers(args.layers, model.cfg.n_layers)
    hooks = [hook_name(args.site, layer) for layer in layers]
    with distributed.main_first():
        check_context(model, args.context_size)
        windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split=args.split, max_tokens=args.tokens)
    cache = record(
        model, windows, hooks, args.out, batch_size=args.batch_size, dtype=args.dtype,
        header={"source": args.text, "split": args.split},
    )
    if not distributed.is_main():
        return 0
    write_run_json(args.out, vars(args) | {"func": None}, started, n_tokens=cache.n_tokens, world_size=distributed.world_size())
    gb = sum(d for d in cache.hooks.values()) * cache.n_tokens * cache.dtype.itemsize / 1e9
    print(f"recorded {cache.n_tokens:,} tokens x {len(hooks)} hooks ({', '.join(hooks[:3])}{', ...' if len(hooks) > 3 else ''}) "
          f"of {model.cfg.model_name} into {args.out} ({gb:.2f} GB, {len(cache.shards)} shards)")
    return 0
