"""interp record: activations at many layers, from one forward pass, into a disk cache."""

from __future__ import annotations

import argparse
import time

from interp.sites import SITES, check_context


def add_parser(sub) -> None:
    p = sub.add_parser(
        "record",
        help="record activations of many layers in one forward pass into a disk cache",
        description="Run text through a model once, stopped at the deepest layer asked for, and store every "
        "requested hook point as memory-mapped shards with a manifest. Rerunning the same command resumes. "
        "Under `torchrun --nproc-per-node N -m interp record ...` the ranks record their share of the shards "
        "into the same folder, and rank 0 writes one manifest (docs/distributed.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="smollm2-135m", help="model name (smollm2-135m, gpt2, ...) or a local folder")
    p.add_argument("--layers", default="all", help="'all', a list like 0,6,11, or a range like 0-3")
    p.add_argument("--site", default="resid_post", choices=list(SITES), help="which activation in each block")
    p.add_argument("--tokens", type=int, default=100_000, help="how many tokens to record")
    p.add_argument("--out", required=True, help="the cache folder to write (or resume)")
    p.add_argument("--text", default="offline", help="text source: 'offline', a file, folder or glob, or a Hugging Face dataset name")
    p.add_argument("--split", default="train", choices=["train", "heldout", "all"], help="which documents of the source")
    p.add_argument("--context-size", type=int, default=128, help="tokens per window")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="storage type of activations")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.set_defaults(func=run)


def run(args) -> int:
    from interp import distributed

    with distributed.session(args.device) as device:
        return _record(args, device)


def _record(args, device) -> int:
    from interp import distributed
    from interp.models import load_model
    from interp.recording import record
    from interp.runlog import write_run_json
    from interp.sites import hook_name, parse_layers
    from interp.tokens import token_windows

    started = time.time()
    with distributed.main_first():  # rank 0 fills the model and token caches; the others then read them
        model = load_model(args.model, device=device)
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
