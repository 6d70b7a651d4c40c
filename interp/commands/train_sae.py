"""interp train-sae: train one SAE per layer from a shared activation stream or an on-disk cache."""

from __future__ import annotations

import time

import sae as saelib
from interp import distributed
from interp.errors import InterpError
from interp.models import load_model, model_ref, saelens_metadata
from interp.models.processing import processing_setting
from interp.runlog import write_run_json
from interp.sites import check_context, hook_name, hook_width, parse_layers
from interp.store import ActivationStore
from interp.stream import block_windows
from interp.text import source_fingerprint
from interp.tokens import token_windows
from sae.runs import cache_metadata, check_architecture, new_saes, sae_dirs, sae_metadata, train_config
from sae.sources import check_split, store_source, stream_source


def run(args) -> int:
    with distributed.session(args.device) as device:
        return _train(args, device)


def _train(args, device) -> int:
    started = time.time()
    check_architecture(args.arch)
    main = distributed.is_main()
    hooks, widths, batches, ref, device = _source(args, device)
    model_name = ref["model_name"]
    tcfg = train_config(args.tokens, args.batch_size, args.checkpoint_every, args.seed, args.lr, args.sparsity_coefficient)
    steps = tcfg.steps
    dirs = sae_dirs(args.out, hooks)
    saes = new_saes(hooks, widths, args.arch, args.k, args.expansion, model_name, device, extra=ref["metadata"])
    ranks = f" on {distributed.world_size()} ranks" if distributed.is_distributed() else ""
    if main:
        print(f"training {len(hooks)} {args.arch} SAE(s) of {args.expansion}x on {model_name}: {', '.join(hooks)}; "
              f"{steps} steps of {args.batch_size} tokens{ranks}")
    identity = {"source": ref["source"], "hooks": hooks, "tokens": args.tokens, "batch_size": args.batch_size,
                "skip_bos": not args.include_bos}
    trained = saelib.train_saes(saes, batches, tcfg, dirs, identity=identity, overwrite=args.overwrite)
    for h, d in dirs.items() if main else ():
        write_run_json(d, vars(args) | {"func": None, "hook": h}, started, steps=steps, world_size=distributed.world_size())
        last = trained[h]
        print(f"{h}: saved to {d} (d_in={last.cfg.d_in}, d_sae={last.cfg.d_sae})")
    return 0


def _source(args, device):
    """(hooks, widths, batches(start) -> iterator of {hook: [B, d]}, model_ref, device); under
    torchrun the batches hold this rank's rows of each global batch."""

    skip_bos = not args.include_bos
    if args.activations:

        cache = ActivationStore(args.activations)
        if args.layers is None:
            hooks = list(cache.hooks)
        else:
            n_layers = 1 + max(int(h.split(".")[1]) for h in cache.hooks)
            hooks = [hook_name(args.site, layer) for layer in parse_layers(args.layers, n_layers)]
            missing = [h for h in hooks if h not in cache.hooks]
            if missing:
                raise InterpError(f"the cache at {args.activations} has no {missing[0]!r}; it holds {', '.join(cache.hooks)}.")
        args.context_size = cache.context_size
        batches = store_source(cache, hooks, args.batch_size, args.seed, skip_bos, device)
        ref = {"model_name": cache.model_name, "source": f"cache:{cache.fingerprint()}",
               "metadata": cache_metadata(cache, skip_bos)}
        return hooks, {h: cache.hooks[h] for h in hooks}, batches, ref, device

    check_split(args.batch_size)
    with distributed.main_first():  # rank 0 fills the model and token caches; the others then read them
        model = load_model(args.model, device=device, processing=not args.no_processing)
    device = next(model.parameters()).device
    layers = parse_layers(args.layers if args.layers is not None else str(model.cfg.n_layers // 2), model.cfg.n_layers)
    hooks = [hook_name(args.site, layer) for layer in layers]
    with distributed.main_first():
        check_context(model, args.context_size)
        # at least one shuffle block of text, however few tokens training takes (the block is what the stream needs)
        need = block_windows(args.batch_size, args.context_size, skip_bos) * args.context_size
        windows = token_windows(args.text, model.tokenizer, context_size=args.context_size, split="train",
                                max_tokens=max(args.tokens, need))
    batches = stream_source(model, windows, hooks, args.batch_size, args.seed, skip_bos, device)
    # the weights' processing is part of the data (said only when not the default, as runs before it was recorded)
    processing = "".join(f":processing:{v}" for v in processing_setting(model).values())
    ref = model_ref(model) | {"source": f"model:{model_ref(model)}:text:{source_fingerprint(args.text)}:ctx:{args.context_size}"
                                        f"{processing}",
                              "metadata": sae_metadata(model_ref(model), saelens_metadata(model), args.context_size,
                                                       args.text, skip_bos)}
    return hooks, {h: hook_width(model, h) for h in hooks}, batches, ref, device
