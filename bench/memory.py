"""Memory of `interp train-sae --activations`: training streams a 4 GB activation cache from its
memory maps and never holds it whole.

    python bench/memory.py                      # 4 GB cache, d 576, a TopK SAE, one pass over every token
    python bench/memory.py --gb 1 --steps 50    # quicker

The cache (runs/bench/cache-<gb>gb, written once by a child process and kept) holds SYNTHETIC
activations (Gaussian rows, d 576, context 128) in the real format: interp's CacheWriter, shards,
manifest, checksums; what is measured is the reading, not the numbers in it. The training is the
real command, `interp train-sae --activations ...`, run in this process, while a thread samples
/proc/self/status every 20 ms: the peak of RssAnon (the process's anonymous memory: arrays, the
SAE, Adam, batches) is the figure that must stay under 2 GB whatever the cache's size. RssFile
(pages of the memory-mapped shards, which the kernel can drop at any time) is printed beside it,
to show the run did read the whole cache.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Results, add_common_args, apply_threads  # noqa: E402

HOOK = "blocks.6.hook_resid_post"


def status_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


class Sampler(threading.Thread):
    """Peaks of RssAnon and RssFile (kB), sampled every `every` seconds until stopped."""

    def __init__(self, every: float = 0.02):
        super().__init__(daemon=True)
        self.every, self.peak, self.samples = every, {"RssAnon": 0, "RssFile": 0}, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            s = status_kb()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s.get(k, 0))
            self.samples += 1
            self._halt.wait(self.every)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join()
        return self.peak


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=4.0, help="size of the cache's activations")
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--context-size", type=int, default=128)
    ap.add_argument("--cache", default=None, help="cache folder (default runs/bench/cache-<gb>gb)")
    ap.add_argument("--expansion", type=int, default=2, help="SAE width (the stream, not the SAE, is measured)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: one pass over every token)")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    add_common_args(ap)
    args = ap.parse_args()
    cache = Path(args.cache or f"runs/bench/cache-{args.gb:g}gb")
    if args.build_only:
        return build(cache, args.gb, args.d, args.context_size)
    apply_threads(args.threads)

    from interp.cli import main as interp_main
    from interp.store import ActivationStore

    out = Results("memory", args.results)
    if not (cache / "manifest.json").exists() or not ActivationStore(cache).manifest.get("complete"):
        print(f"writing a {args.gb:g} GB synthetic cache to {cache} (a child process; not measured)", flush=True)
        subprocess.run([sys.executable, __file__, "--build-only", "--gb", str(args.gb), "--d", str(args.d),
                        "--context-size", str(args.context_size), "--cache", str(cache)], check=True)
    c = ActivationStore(cache)
    size_gb = sum((cache / s.name / f"{HOOK}.bin").stat().st_size for s in c.shards) / 2**30
    tokens = c.n_tokens - c.n_windows  # BOS positions are left out by default
    steps = args.steps or tokens // args.batch_size
    before = status_kb()
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        interp_main(["train-sae", "--activations", str(cache), "--arch", "topk", "--k", "32", "--expansion",
                     str(args.expansion), "--tokens", str(steps * args.batch_size), "--batch-size", str(args.batch_size),
                     "--out", str(Path(tmp) / "sae"), "--device", "cpu"])
    secs = time.perf_counter() - t0
    peak = sampler.stop()
    out.say(f"cache {cache}: {size_gb:.2f} GiB of activations in {len(c.shards)} shards, {c.n_tokens:,} tokens; "
            f"trained {steps} steps of {args.batch_size} ({steps * args.batch_size / tokens:.0%} of the cache's tokens) in {secs:.0f} s; "
            f"{sampler.samples} samples of /proc/self/status\n")
    out.say("| RssAnon before (MiB) | peak RssAnon (MiB) | peak RssFile (MiB) | cache (MiB) | limit (MiB) | under the limit |")
    out.say("| --- | --- | --- | --- | --- | --- |")
    out.say(f"| {before['RssAnon'] / 1024:,.0f} | {peak['RssAnon'] / 1024:,.0f} | {peak['RssFile'] / 1024:,.0f} "
            f"| {size_gb * 1024:,.0f} | 2,048 | {'yes' if peak['RssAnon'] < 2 * 2**20 else 'NO'} |")
    out.save()


if __name__ == "__main__":
    main()
