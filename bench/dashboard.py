"""Dashboard throughput: features per second to build dashboards for EVERY feature of an 8x SAE.

    .venv/bin/python bench/dashboard.py [--tokens 100000] [--layer 7] [--sae DIR] [--features all]

Model SmolLM2-135M (the offline default), its held-out text, blocks.{layer}.hook_resid_post,
recorded once into runs/bench/ (recording is not timed). The SAE is --sae DIR if given, else a
TopK SAE (k=32, d_sae = 8 x 576 = 4608) with the trainer's random initialisation: the statistics
cost the same whatever the weights, though a trained SAE's features fire more evenly.

Timed: everything `interp dashboard` does after loading: the one pass over the cache (encode,
top-k, bands, histograms), logit effects through the 49,152-token unembedding, neighbours, the
prompt view, and writing every page. Printed with the anchors measured in the same run: the fp32
matmul rate and the bare SAE encode of the same tokens (the floor for any one-pass design).

Side by side with sae-dashboard (its own venv; it runs the model and re-encodes every token for
each batch of 256 features): bench/saedashboard_side.py on the same cache and SAE folder."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.dashboard import make_dashboard  # noqa: E402
from analyses.dictionary import sae_dictionary  # noqa: E402
from analyses.features import FeatureStatsConfig, parse_features  # noqa: E402
from analyses.prompts import DEFAULT_PROMPTS  # noqa: E402
from bench.harness import Spread, interleave, ratios, start  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.recording import record  # noqa: E402
from interp.store import ActivationStore  # noqa: E402
from interp.tokens import token_windows  # noqa: E402


def matmul_gflops(n: int = 4096, d: int = 576, s: int = 4608, reps: int = 5) -> float:
    a, b = torch.randn(n, d), torch.randn(d, s)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n * d * s * reps / (time.perf_counter() - t) / 1e9


def encode_only(sae, cache: ActivationStore, hook: str) -> float:
    t = time.perf_counter()
    with torch.no_grad():
        for _, acts in cache.iter_windows([hook], max(1, 4096 // cache.context_size)):
            x = acts[hook]
            sae.encode(x.reshape(-1, x.shape[-1]))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--layer", type=int, default=7)
    ap.add_argument("--context-size", type=int, default=128)
    ap.add_argument("--sae", default=None, help="a trained SAE folder (default: a randomly initialised TopK 8x SAE)")
    ap.add_argument("--features", default="all")
    ap.add_argument("--runs", default="runs/bench", help="where the cache and the dashboard go")
    ap.add_argument("--keep", action="store_true", help="keep the dashboard folder")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of (bare encode, whole dashboard), interleaved (ABBA)")
    args, log = start(ap, "dashboard")

    from sae import SAEConfig, TrainConfig, create_sae, load_sae, save_sae

    torch.manual_seed(0)
    model = load_model("smollm2-135m", device="cpu")
    hook = f"blocks.{args.layer}.hook_resid_post"
    root = Path(args.runs)
    acts_dir = root / f"acts-smollm2-L{args.layer}-{args.tokens}"
    if not (acts_dir / "manifest.json").exists() or not ActivationStore(acts_dir).manifest.get("complete"):
        windows = token_windows("offline", model.tokenizer, context_size=args.context_size, split="heldout", max_tokens=args.tokens)
        windows = windows[: args.tokens // args.context_size]
        print(f"recording {windows.numel():,} held-out tokens of smollm2-135m at {hook} into {acts_dir} (not timed)")
        record(model, windows, [hook], acts_dir, header={"source": "offline", "split": "heldout"})
    cache = ActivationStore(acts_dir)

    if args.sae:
        sae = load_sae(args.sae, device="cpu")
        kind = f"trained SAE {args.sae}"
    else:
        d = model.cfg.d_model
        sae = create_sae(SAEConfig("topk", d_in=d, d_sae=8 * d, k=32, hook_name=hook, model_name="smollm2-135m"))
        sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
        sae.eval().requires_grad_(False)
        save_sae(sae, root / f"sae-random-topk-L{args.layer}")  # the same SAE for bench/saedashboard_side.py
        kind = f"random TopK SAE (k=32, trainer's initialisation), saved to {root / f'sae-random-topk-L{args.layer}'}"
    dic = sae_dictionary(sae)
    features = parse_features(args.features, dic.n_features)

    gflops = matmul_gflops()
    out = root / "dashboard"
    got = {}

    def whole():
        shutil.rmtree(out, ignore_errors=True)
        got["index"], got["stats"] = make_dashboard(dic, cache, out, model=model, features=features, cfg=FeatureStatsConfig(),
                                                    prompts=DEFAULT_PROMPTS, title="bench")

    # the anchor and the dashboard take turns, so load hits both
    t = interleave({"encode": lambda: encode_only(sae, cache, hook), "dashboard": whole}, args.repeats, warmup=0)
    encs, totals = t["encode"], t["dashboard"]
    index, stats = got["index"], got["stats"]
    total, t_enc = Spread(totals).median, Spread(encs).median
    log.say(f"dashboard seconds {Spread(totals).fmt('.1f')}; bare encode seconds {Spread(encs).fmt('.2f')}; "
            f"ratio per round {ratios(totals, encs).fmt('.1f')}")
    n_files = sum(1 for _ in (out / "features").iterdir())
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    t = stats.meta["timings"]
    result = {
        "sae": kind, "d_sae": dic.n_features, "features": len(features), "tokens": cache.n_tokens, "hook": hook,
        "seconds": round(total, 2), "features_per_second": round(len(features) / total, 1), "timings": t,
        "encode_only_seconds": round(t_enc, 2), "matmul_gflops": round(gflops, 1), "pages": n_files, "megabytes": round(size_mb, 1),
        "threads": torch.get_num_threads(),
    }
    log.say(json.dumps(result, indent=1))
    log.say(f"\n{len(features):,} features over {cache.n_tokens:,} tokens: {total:.1f} s = {len(features) / total:.0f} features/s "
          f"(pass {t['pass']:.1f} s of which the bare SAE encode is ~{t_enc:.1f} s; weights {t['weights']:.1f} s; "
          f"prompts {t['prompts']:.1f} s; pages {t['render']:.1f} s; {size_mb:.0f} MB on disk). matmul anchor {gflops:.0f} GFLOP/s.")
    log.say(str(index.resolve()))
    log.save()
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
