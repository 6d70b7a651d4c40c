"""interp train-sae: train one SAE per layer from a shared activation stream or an on-disk cache."""

from __future__ import annotations

import argparse
import time

from interp.sites import SITES, check_context


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-sae",
        help="train sparse autoencoders on one or several layers",
        description="Train an SAE per layer. Activations come straight from the model (one forward pass feeds "
        "every layer's SAE) or from a cache written by `interp record` (--activations). Rerunning the same "
        "command resumes from the last checkpoint. One layer: --out is the SAE folder (SAELens format); "
        "several layers: --out holds one folder per hook. Under `torchrun --nproc-per-node N -m interp train-sae ...` "
        "the same command trains data-parallel: --batch-size stays the global batch, each rank takes its part of "
        "every batch, rank 0 writes the outputs, and a run resumes on any number of ranks (docs/distributed.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="smollm2-135m", help="model name or local folder (ignored with --activations)")
    p.add_argument("--layer", "--layers", dest="layers", default=None,
                   help="a layer, or a list like 0,4,8; default: the middle layer (or every hook of --activations)")
    p.add_argument("--site", default="resid_post", choices=list(SITES), help="which activation in each block")
    p.add_argument("--activations", default=None, help="train from this activation cache instead of running the model")
    p.add_argument("--arch", default="topk", help="relu | topk | batchtopk | jumprelu")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk, batchtopk)")
    p.add_argument("--expansion", type=int, default=8, help="d_sae = expansion * d_in")
    p.add_argument("--tokens", type=int, default=2_000_000, help="training tokens")
    p.add_argument("--batch-size", type=int, default=4096, help="tokens per step (over all ranks under torchrun)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the trainer's)")
    p.add_argument("--sparsity-coefficient", type=float, default=None, help="L1 (relu) or L0 (jumprelu) weight")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--text", default="offline", help="text source when running the model")
    p.add_argument("--context-size", type=int, default=128, help="tokens per window when running the model")
    p.add_argument("--include-bos", action="store_true", help="train on each window's BOS position too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from interp import distributed

    with distributed.session(args.device) as device:
        return _train(args, device)


def _train(args, device) -> int:
    import sae as saelib
    from interp import distributed
    from interp.runlog import write_run_json
    from interp.sae_runs import check_architecture, new_saes, sae_dirs, train_config

    started = time.time()
    check_architecture(args.arch)
    main = distributed.is_main()
    hooks, widths, batches, model_name, device = _source(args, device)
    tcfg = train_config(args.tokens, args.batch_size, args.checkpoint_every, args.seed, args.lr, args.sparsity_coefficient)
    steps = tcfg.steps
    dirs = sae_dirs(args.out, hooks)
    saes = new_saes(hooks, widths, args.arch, args.k, args.expansion, model_name, device,
                    extra={"context_size": args.context_size, "dataset": args.text if not args.activations else args.activations,
                           "skip_bos": not args.include_bos})
    ranks = f" on {distributed.world_size()} ranks" if distributed.is_distributed() else ""
    if main:
        print(f"training {len(hooks)} {args.arch} SAE(s) of {args.expansion}x on {model_name}: {', '.join(hooks)}; "
              f"{steps} steps of {args.batch_size} tokens{ranks}")
    trained = saelib.train_saes(saes, batches, tcfg, dirs)
    for h, d in dirs.items() if main else ():
        write_run_json(d, vars(args) | {"func": None, "hook": h}, started, steps=steps, world_size=distributed.world_size())
        last = trained[h]
        print(f"{h}: saved to {d} (d_in={last.cfg.d_in}, d_sae={last.cfg.d_sae})")
    return 0


def _source(args, device):
    """(hooks, widths, batches(start) -> iterator of {hook: [B, d]}, model name, device); under
    torchrun the batches hold this rank's rows of each global batch."""
    from interp import distributed
    from interp.errors import InterpError
    from interp.sae_runs import cache_batches
    from interp.sites import hook_name, parse_layers

    skip_bos = not args.include_bos
    if args.activations:
        from interp.store import ActivationCache

        cache = ActivationCache(args.activations)
        if args.layers is None:
            hooks = list(cache.hooks)
        else:
            n_layers = 1 + max(int(h.split(".")[1]) for h in cache.hooks)
            hooks = [hook_name(args.site, layer) for layer in parse_layers(args.layers, n_layers)]
            missing = [h for h in hooks if h not in cache.hooks]
            if missing:
                raise InterpError(f"the cache at {args.activations} has no {missing[0]!r}; it holds {', '.join(cache.hooks)}.")
        args.context_size = cache.context_size
        batches = cache_batches(cache, hooks, args.batch_size, args.seed, skip_bos, device)
        return hooks, {h: cache.hooks[h] for h in hooks}, batches, cache.model_name, device

    from interp.models import load_model
    from interp.sites import hook_width
    from interp.stream import stream_activations
    from interp.tokens import token_windows

    if args.batch_size < distributed.world_size():
        raise InterpError(f"a batch of {args.batch_size} tokens cannot be split over {distributed.world_size()} ranks; use a larger --batch-size.")
    with distributed.main_first():  # rank 0 fills the model and token caches; the others then read them
        model = load_model(args.model, device=device)
    device = next(model.parameters()).device
    layers = parse_layers(args.layers if args.layers is not None else str(model.cfg.n_layers // 2), model.cfg.n_layers)
    hooks = [hook_name(args.site, layer) for layer in layers]
    with distributed.main_first():
        check_context(model, args.context_size)
        windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split="train", max_tokens=args.tokens)

    def batches(start: int):
        for b in stream_activations(model, windows, hooks, batch_size=args.batch_size, seed=args.seed,
                                    start_step=start, skip_bos=skip_bos):
            yield {h: x.to(device) for h, x in b.items()}

    return hooks, {h: hook_width(model, h) for h in hooks}, batches, model.cfg.model_name, device
