"""The cost of checking shards where they are read: one SAE training epoch from an activation
cache with the checksum and finite-value pass (`ActivationStore(path)`, the default) against the
same epoch without it (`verify=False`), alternated so that both see the same machine load. The
cache is recorded from the offline SmolLM2-135M first (or given with --cache). Goal: under 5%.

    python bench/verify.py [--tokens 65536] [--layer 8] [--repeats 3] [--cache DIR]"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Spread, machine  # noqa: E402
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
    args = ap.parse_args()
    print(machine())
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
        print(f"cache: {cache.n_tokens:,} tokens of {cache.model_name} at {hook} (d {cache.hooks[hook]}), "
              f"{len(cache.shards)} shards, {mb:.0f} MB; epoch of TopK 8x k32, batch {args.batch}")
        epoch(cache_dir, hook, False, args.batch)  # warm the page cache and the kernels
        on, off = [], []
        for _ in range(args.repeats):
            off.append(epoch(cache_dir, hook, False, args.batch))
            on.append(epoch(cache_dir, hook, True, args.batch))
        t_off, t_on = statistics.median(off), statistics.median(on)
        print(f"epoch without checks {t_off:.2f} s, with checks {t_on:.2f} s (medians of {args.repeats}): "
              f"cost {100 * (t_on / t_off - 1):+.1f}% (goal < 5%)")
        print(f"without {Spread(off).fmt('.2f')} s; with {Spread(on).fmt('.2f')} s; "
              f"with/without per round {Spread([a / b for a, b in zip(on, off)]).fmt('.3f')}")


if __name__ == "__main__":
    main()
