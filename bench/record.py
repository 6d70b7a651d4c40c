"""Recording throughput: one pass for L layers against a bare forward and against a pass per layer.

    .venv/bin/python bench/record.py [--models gpt2-small,smollm2-135m] [--tokens 4096] [--page-cache]

For each model, on the same token windows in one run:
  (a)  bare forward pass, stopped at the deepest recorded layer       tokens/s
  (b)  recording all L layers' resid_post into the disk cache, one pass tokens/s
  (c)  recording each layer in a pass of its own, into the disk cache:
       (c-full) full forward passes (what run_with_cache per layer does)
       (c-stop) each pass stopped at its layer (the cheapest per-layer way)
  (d)  (b) without fsync of files and folders (interp.files.DURABLE off): what durability costs
  (e)  with --page-cache: (b) through the page cache instead of direct I/O (the recorder before
       interp/direct_file.py): what direct I/O buys
and prints the ratios (b)/(a) (goal >= 0.95) and (b)/(c) (goal >= 0.8 L).

Like `interp record`, the process first makes malloc keep freed memory (interp/allocator.py), for
(a) and (b) alike: without it every batch's forward faults in ~2 GB of fresh pages, which on this
VM is the forward's largest source of noise (--default-malloc measures without it).

(a), (b), (d) [and (e)] alternate (ABBA) for --repeats rounds after one untimed round; each ratio
is taken round by round and printed as median [min, max], with every round's (b)/(a) listed and
the number of rounds that reach 0.95, so the table says how sure it is. (c) takes L passes, so it
runs once, and only with --per-layer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Results, Spread, add_common_args, apply_threads, interleave, load_average, ratios  # noqa: E402
from interp import files, shard_writer  # noqa: E402
from interp.allocator import keep_freed_memory  # noqa: E402
from interp.recording import record  # noqa: E402
from interp.sites import hook_name, hook_width  # noqa: E402


def gpt2_small_random():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LNPre", model_name="gpt2-small-random", seed=0,
    )
    return HookedTransformer(cfg).eval()


def load(name: str):
    if name == "gpt2-small":
        return gpt2_small_random()
    from interp.models import load_model

    return load_model(name, device="cpu")


def windows_for(model, n_tokens: int, ctx: int) -> torch.Tensor:
    try:
        from interp.tokens import token_windows

        w = token_windows("offline", model.tokenizer, context_size=ctx, max_tokens=n_tokens)
    except Exception:  # a random-weight model may have no tokenizer: random ids measure the same work
        w = torch.randint(0, model.cfg.d_vocab, (n_tokens // ctx, ctx), generator=torch.Generator().manual_seed(0))
    return w[: n_tokens // ctx]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_model(name: str, n_tokens: int, ctx: int, batch: int, tmp: Path, repeats: int = 5,
                per_layer_too: bool = False, page_cache_too: bool = False, no_fsync_too: bool = True) -> dict:
    model = load(name)
    L = model.cfg.n_layers
    w = windows_for(model, n_tokens, ctx)
    n = w.numel()
    hooks = [hook_name("resid_post", layer) for layer in range(L)]

    def bare():
        with torch.inference_mode():
            for b in range(0, len(w), batch):
                model(w[b : b + batch], stop_at_layer=L)

    own: list[float] = []  # per (b) call: seconds the recorder itself took on the recording thread

    def one_pass():
        """(b), timing what is not the model: the hooks' appends, and all of the call outside forwards."""
        spent = {"fwd": 0.0, "append": 0.0}
        forward, append = model.forward, shard_writer.ShardWriter.append

        def timed_forward(*a, **k):
            t0 = time.perf_counter()
            try:
                return forward(*a, **k)
            finally:
                spent["fwd"] += time.perf_counter() - t0

        def timed_append(self, what, arr):
            t0 = time.perf_counter()
            try:
                return append(self, what, arr)
            finally:
                spent["append"] += time.perf_counter() - t0 if what != "tokens" else 0.0

        model.forward, shard_writer.ShardWriter.append = timed_forward, timed_append
        t0 = time.perf_counter()
        try:
            record(model, w, hooks, tmp / "b", batch_size=batch, progress=False)
        finally:
            wall = time.perf_counter() - t0
            del model.forward
            shard_writer.ShardWriter.append = append
        own.append(wall - spent["fwd"] + spent["append"])

    def one_pass_no_fsync():  # (d): what the durable renames cost (interp.files.DURABLE)
        files.DURABLE = False
        try:
            record(model, w, hooks, tmp / "b", batch_size=batch, progress=False)
        finally:
            files.DURABLE = True

    def one_pass_page_cache():  # (e): the same recorder without direct I/O
        shard_writer.DIRECT = False
        try:
            record(model, w, hooks, tmp / "b", batch_size=batch, progress=False)
        finally:
            shard_writer.DIRECT = True

    def per_layer(stop: bool):
        def go():
            for layer, h in enumerate(hooks):
                out = tmp / f"c{layer}"
                if stop:
                    record(model, w, [h], out, batch_size=batch, progress=False)
                else:  # the same recorder, but the whole model runs every time
                    orig = model.forward

                    def full(tokens, stop_at_layer=None, **kw):
                        return orig(tokens, **kw)

                    model.forward = full
                    try:
                        record(model, w, [h], out, batch_size=batch, progress=False)
                    finally:
                        model.forward = orig
            return None

        return go

    def clean():
        shutil.rmtree(tmp / "b", ignore_errors=True)

    cpu: dict[str, list[float]] = {}
    fns = ({"a": bare, "b": one_pass} | ({"d": one_pass_no_fsync} if no_fsync_too else {})
           | ({"e": one_pass_page_cache} if page_cache_too else {}))
    t = interleave(fns, repeats, warmup=1, between=clean, cpu=cpu)
    own = own[1:]  # the untimed round's call
    probe = shard_writer.ShardWriter(tmp, "probe", 0, ["x"])
    probe.abort()
    r = {"model": name, "L": L, "tokens": n, "a": Spread([n / s for s in t["a"]]), "b": Spread([n / s for s in t["b"]]),
         "b/a": ratios(t["a"], t["b"]), "own": Spread(own), "b/a own": Spread([a / (a + o) for a, o in zip(t["a"], own)]),
         "b/a cpu": ratios(cpu["a"], cpu["b"]),
         "writes": "direct I/O" if probe.direct else "page cache", "MB": n * sum(hook_width(model, h) for h in hooks) * 4 / 1e6}
    if no_fsync_too:
        r["b/d"] = ratios(t["d"], t["b"])
    if page_cache_too:
        r["b/e"] = ratios(t["e"], t["b"])
    if per_layer_too:
        tc_stop = timed(per_layer(True))
        for p in tmp.glob("c*"):
            shutil.rmtree(p)
        tc_full = timed(per_layer(False))
        for p in tmp.glob("c*"):
            shutil.rmtree(p)
        r |= {"c_full": n / tc_full, "c_stop": n / tc_stop}
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="gpt2-small,smollm2-135m")
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per timed call (fixed costs and noise weigh less with more)")
    ap.add_argument("--context-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7, help="alternating rounds of (a) and (b)")
    ap.add_argument("--per-layer", action="store_true", help="also time (c): a pass per layer (slow: L passes)")
    ap.add_argument("--page-cache", action="store_true", help="also time (e): the recorder through the page cache")
    ap.add_argument("--no-d", action="store_true", help="skip (d), the rounds without fsync (a third less time)")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc as it is (see the docstring)")
    add_common_args(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    kept = False if args.default_malloc else keep_freed_memory()
    torch.manual_seed(0)
    out = Results("record", args.results)
    out.say(f"{args.tokens} tokens, context {args.context_size}, batch {args.batch_size} windows, "
            f"{args.repeats} alternating rounds of (a) bare forward and (b) recording every layer; medians [min, max]\n")
    out.say(f"malloc keeps freed memory (interp/allocator.py, as `interp record` does): {'yes' if kept else 'no'}, for (a) and (b) alike\n")
    out.say("(d) is (b) without fsync of files and folders: (b)/(d) is the speed kept by durable writes (1 = free)\n")
    if args.page_cache:
        out.say("(e) is (b) through the page cache instead of direct I/O: (b)/(e) > 1 is what direct I/O buys\n")
    out.say("recorder's own s: per (b) call, the time of the hooks' appends plus all of the call outside the model's forwards "
            "(opening, the last shard's close and fsyncs, the manifest); (b)/(a) own = (a) / ((a) + own), round by round: the "
            "ratio if the forwards in (b) ran at (a)'s speed, which the machine's noise moves far less\n")
    out.say("(b)/(a) cpu: the same ratio in process CPU seconds (all threads), which other processes' load moves far less\n")
    out.say("| model | L | tokens | MB written | writes | (a) bare tok/s | (b) one pass tok/s | (b)/(a) per round | recorder's own s | (b)/(a) own | (b)/(a) cpu "
            "| (b)/(d) per round | (b)/(e) per round | (b)/(c-full) | (b)/(c-stop) | 0.8 L |")
    out.say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rounds = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as d:
            r = bench_model(name, args.tokens, args.context_size, args.batch_size, Path(d), args.repeats, args.per_layer,
                            args.page_cache, not args.no_d)
        c = (f"{r['b'].median / r['c_full']:.1f} | {r['b'].median / r['c_stop']:.1f}" if "c_full" in r else "- | -")
        e = r["b/e"].fmt(".3f") if "b/e" in r else "-"
        dd = r["b/d"].fmt(".3f") if "b/d" in r else "-"
        out.say(f"| {r['model']} | {r['L']} | {r['tokens']} | {r['MB']:,.0f} | {r['writes']} | {r['a'].fmt(',.0f')} | {r['b'].fmt(',.0f')} "
                f"| {r['b/a'].fmt('.3f')} | {r['own'].fmt('.3f')} | {r['b/a own'].fmt('.3f')} | {r['b/a cpu'].fmt('.3f')} | {dd} | {e} | {c} | {0.8 * r['L']:.1f} |")
        v = r["b/a"].values
        rounds.append(f"{r['model']}: (b)/(a) by round {', '.join(f'{x:.3f}' for x in v)}; "
                      f"{sum(x >= 0.95 for x in v)} of {len(v)} rounds reach 0.95, median {'reaches' if r['b/a'].median >= 0.95 else 'misses'} it")
    out.say()
    for line in rounds:
        out.say(line)
    out.say(f"load average at the end {load_average()} (1/5/15 min)")
    out.save()


if __name__ == "__main__":
    main()
