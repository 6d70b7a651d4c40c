"""The cost of checking shards where they are read: one SAE training epoch from an activation
cache with the checksum and finite-value pass (`ActivationStore(path)`, the default) against the
same epoch without it (`verify=False`), interleaved round by round (ABBA) so that both see the
same machine load; the cost is the ratio per round, median [min, max]. The
cache is recorded from the offline SmolLM2-135M first (or given with --cache). Goal: under 5%.

    python bench/verify.py [--tokens 65536] [--layer 8] [--repeats 3] [--cache DIR]"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Spread, interleave, ratios, start  # noqa: E402
from interp import store  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.recording import record  # noqa: E402
from interp.tokens import token_windows  # noqa: E402
from sae import SAEConfig, TrainConfig, Trainer, create_sae  # noqa: E402


def epoch(cache_dir: Path, hook: str, verify: bool, batch: int) -> float:
    """Seconds for one epoch of TopK (8x, k 32) training steps read from the cache, checks included."""
    store._VERIFIED.clear()  # a fresh process: nothing checked yet
    t = time.perf_counter()
    cache = store.ActivationStore(cache_dir, verify=verify)
    trainer = None
    for b in cache.iter_batches([hook], batch_size=batch, epochs=1, skip_bos=True):
        x = b[hook]
        if trainer is None:
            trainer = Trainer(create_sae(SAEConfig("topk", x.shape[1], 8 * x.shape[1], k=32)), TrainConfig(steps=10**6))
            trainer.initialize(x)
        trainer.step(x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=65_536)
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", default=None, help="an existing cache (default: record one into a temporary folder)")
    args, out = start(ap, "verify")
    torch.manual_seed(0)
    hook = f"blocks.{args.layer}.hook_resid_post"
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(args.cache or Path(tmp) / "acts")
        if args.cache is None:
            model = load_model("smollm2-135m")
            windows = token_windows("offline", model.tokenizer, context_size=128, max_tokens=args.tokens)
            record(model, windows[: args.tokens // 128], [hook], cache_dir, progress=False)
        cache = store.ActivationStore(cache_dir)
        hook = hook if hook in cache.hooks else next(iter(cache.hooks))
        mb = sum(f.stat().st_size for f in cache_dir.glob("shard_*/*.bin")) / 1e6
        out.say(f"cache: {cache.n_tokens:,} tokens of {cache.model_name} at {hook} (d {cache.hooks[hook]}), "
                f"{len(cache.shards)} shards, {mb:.0f} MB; epoch of TopK 8x k32, batch {args.batch}; "
                f"{args.repeats} interleaved rounds after 1 warm-up")
        t = interleave({"without checks": lambda: epoch(cache_dir, hook, False, args.batch),
                        "with checks": lambda: epoch(cache_dir, hook, True, args.batch)}, args.repeats, warmup=1)
        off, on = t["without checks"], t["with checks"]
        r = ratios(on, off)
        out.say(f"epoch without checks {Spread(off).fmt('.2f')} s; with checks {Spread(on).fmt('.2f')} s")
        out.say(f"with/without per round {r.fmt('.3f')}: cost {100 * (r.median - 1):+.1f}% at the median (goal < 5%)")
    out.save()


if __name__ == "__main__":
    main()
