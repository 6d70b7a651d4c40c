"""Memory of `interp train-sae --activations`: training streams a 4 GB activation cache from its
memory maps and never holds it whole.

    python bench/memory.py                      # 4 GB cache against a 0.25 GB one, d 576, TopK, one pass over the 4 GB
    python bench/memory.py --gb 1 --steps 50    # quicker

The caches (runs/bench/cache-<gb>gb, written once by a child process and kept) hold SYNTHETIC
activations (Gaussian rows, d 576, context 128) in the real format: interp's CacheWriter, shards,
manifest, checksums; what is measured is the reading, not the numbers in it. The training is the
real command, `python -m interp train-sae --activations ...`, run as a child process while a
thread here samples its /proc/<pid>/status every 20 ms: the peak of RssAnon (the process's
anonymous memory: arrays, the SAE, Adam, batches) is the figure that must stay under 2 GB
whatever the cache's size. RssFile (pages of the memory-mapped shards, which the kernel can drop
at any time) is printed beside it, to show the run did read the whole cache.

The baseline, measured in the same run: the same command for the same number of steps on a
cache `--baseline-gb` large (it wraps around it several times). Streaming means the two peaks
agree (ratio ~1) although one cache is 16x the other; a run that held its cache would show the
difference. With `--repeats` > 1 the two alternate (ABBA) and the peaks are given as
median [min, max].
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import REPO, MemorySampler, Results, Spread, add_common_args, interleave, ratios  # noqa: E402

HOOK = "blocks.6.hook_resid_post"


def build(path: Path, gb: float, d: int, ctx: int) -> None:
    """Write the synthetic cache, one 256 MB shard at a time (run in a child process)."""
    import numpy as np

    from interp.store import CacheWriter

    header = {"model": "synthetic", "hooks": {HOOK: {"d": d}}, "dtype": "float32", "context_size": ctx,
              "source": "bench/memory.py: Gaussian rows"}
    writer = CacheWriter(path, header)
    windows_total = int(gb * 2**30) // (ctx * d * 4)
    per_shard = (256 << 20) // (ctx * d * 4)
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(d).astype(np.float32)
    while writer.n_windows < windows_total:
        w = min(per_shard, windows_total - writer.n_windows)
        acts = rng.standard_normal((w * ctx, d), dtype=np.float32) + mean
        tokens = rng.integers(0, 50_000, (w, ctx), dtype=np.int32)
        writer.write_shard(tokens, {HOOK: acts})
    writer.finish()


def ensure(cache: Path, gb: float, args) -> None:
    from interp.store import ActivationStore

    if not (cache / "manifest.json").exists() or not ActivationStore(cache).manifest.get("complete"):
        print(f"writing a {gb:g} GB synthetic cache to {cache} (a child process; not measured)", flush=True)
        subprocess.run([sys.executable, __file__, "--build-only", "--gb", str(gb), "--d", str(args.d),
                        "--context-size", str(args.context_size), "--cache", str(cache)], check=True)


def train(cache: Path, steps: int, args, seen: list[dict]) -> None:
    """`interp train-sae` on `cache` in a child process; its peaks go to `seen`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "interp", "train-sae", "--activations", str(cache), "--arch", "topk", "--k", "32",
               "--expansion", str(args.expansion), "--tokens", str(steps * args.batch_size), "--batch-size",
               str(args.batch_size), "--out", str(Path(tmp) / "sae"), "--device", "cpu"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        _, err = proc.communicate()
        peak = sampler.stop()
        if proc.returncode != 0:
            sys.exit(f"train-sae on {cache} failed:\n{err[-3000:]}")
        seen.append({**peak, "samples": sampler.samples, "seconds": time.perf_counter() - t0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=4.0, help="size of the cache's activations")
    ap.add_argument("--baseline-gb", type=float, default=0.25, help="size of the baseline cache (0 to skip it)")
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--context-size", type=int, default=128)
    ap.add_argument("--cache", default=None, help="cache folder (default runs/bench/cache-<gb>gb)")
    ap.add_argument("--baseline-cache", default=None, help="baseline cache folder (default runs/bench/cache-<baseline-gb>gb)")
    ap.add_argument("--expansion", type=int, default=2, help="SAE width (the stream, not the SAE, is measured)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=None, help="training steps, both runs (default: one pass over the large cache)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of (large, baseline), alternating")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    add_common_args(ap)
    args = ap.parse_args()
    cache = Path(args.cache or f"runs/bench/cache-{args.gb:g}gb")
    if args.build_only:
        return build(cache, args.gb, args.d, args.context_size)

    from interp.store import ActivationStore

    out = Results("memory", args.results)
    caches = {"large": (cache, args.gb)}
    if args.baseline_gb:
        caches["baseline"] = (Path(args.baseline_cache or f"runs/bench/cache-{args.baseline_gb:g}gb"), args.baseline_gb)
    for path, gb in caches.values():
        ensure(path, gb, args)
    big = ActivationStore(cache)
    tokens = big.n_tokens - big.n_windows  # BOS positions are left out by default
    steps = args.steps or tokens // args.batch_size
    seen: dict[str, list[dict]] = {k: [] for k in caches}
    interleave({k: (lambda k=k: train(caches[k][0], steps, args, seen[k])) for k in caches}, args.repeats, warmup=0)
    out.say(f"{steps} steps of {args.batch_size} tokens per run ({steps * args.batch_size / tokens:.0%} of the large cache's "
            f"tokens), TopK {args.expansion}x, `python -m interp train-sae` in a child process sampled every 20 ms; "
            f"{args.repeats} round(s), alternating\n")
    out.say("| cache | GiB | shards | tokens | train s | peak RssAnon (MiB) | peak RssFile (MiB) | samples | under 2 GiB |")
    out.say("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, (path, _) in caches.items():
        c = ActivationStore(path)
        size = sum((path / s.name / f"{HOOK}.bin").stat().st_size for s in c.shards) / 2**30
        anon = Spread([r["RssAnon"] / 1024 for r in seen[k]])
        out.say(f"| {k} {path} | {size:.2f} | {len(c.shards)} | {c.n_tokens:,} | {Spread([r['seconds'] for r in seen[k]]).fmt('.0f')} "
                f"| {anon.fmt(',.0f')} | {Spread([r['RssFile'] / 1024 for r in seen[k]]).fmt(',.0f')} "
                f"| {sum(r['samples'] for r in seen[k])} | {'yes' if anon.max < 2048 else 'NO'} |")
    if "baseline" in seen:
        r = ratios([x["RssAnon"] for x in seen["large"]], [x["RssAnon"] for x in seen["baseline"]])
        out.say(f"\npeak RssAnon, large cache / baseline cache, round by round: {r.fmt('.3f')} "
                f"(1.0: memory does not grow with the cache; the caches differ {args.gb / args.baseline_gb:g}x)")
    out.save()


if __name__ == "__main__":
    main()
