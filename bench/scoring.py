"""Interpretability scoring throughput: features scored per second with the default (token)
explainer, 100k held-out tokens.

    .venv/bin/python bench/scoring.py [--tokens 100000] [--features 64,256,1024] [--d-sae 4096]

Text: real GPT-2 tokens of the offline corpus (`token_windows("offline", gpt2_tokenizer())`),
train and held-out splits, context 128. Activations: SYNTHETIC, made from those tokens so that
features depend on the token and the one before it, like real early-layer features:
x_t = E[tok_t] + 0.5 E'[tok_{t-1}] + 0.3 noise (d_in 256), encoded by a random ReLU SAE with
`--d-sae` features and a bias that makes about 3% of them fire per token. The SAE's encode is
part of the measured work, as it is for a real SAE.

Every measurement below is repeated `--repeats` times, all of them interleaved round by round
(bench/harness.py's interleave, ABBA), and given as median [min, max]; ratios are taken round by
round against the baseline (a) of the same round. Printed, in one run:
  (a) baseline: reading both splits' activations and encoding them, nothing else (the floor
      for any scorer that makes one pass per split);
  (b) score_features for N features sampled among the live ones: wall time, features/s, and
      the split into the train pass (all d_sae features' examples), the held-out pass (N
      features), explaining, and simulating + scoring;
  (c) the marginal cost of one more feature: (explain + simulate) / N;
  (d) per basis (`--bases`: neurons, sae, random, rotated, pca, ica of analyses/bases.py, the
      signed ones split into half-units), `--basis-features` units each, ALL bases scored from
      ONE shared pass per split (as compare-layers does), against one pass per basis (the ratio
      is the saving); and per score kind, units/s: the explanation and the one simulation of the
      top and random examples give the top-and-random, random-only and detection scores
      together, the band score costs a second simulation (measured as the difference between a
      run with band examples and one without)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.bases import (  # noqa: E402
    fit_ica,
    fit_pca,
    projection_basis,
    random_directions,
    rotation_columns,
    signed_neurons,
)
from analyses.dictionary import Dictionary  # noqa: E402
from analyses.scoring import ScoringConfig, score_features, score_many  # noqa: E402
from bench.harness import Spread, interleave, ratios, start  # noqa: E402
from interp.gpt2_tokenizer import gpt2_tokenizer  # noqa: E402
from interp.tokens import token_windows  # noqa: E402

HOOK = "blocks.0.hook_resid_post"


def synthetic(windows: torch.Tensor, d_in: int, seed: int) -> torch.Tensor:  # [W, ctx, d_in]
    g = torch.Generator().manual_seed(seed)
    V = int(windows.max()) + 1
    E = torch.randn(V, d_in, generator=torch.Generator().manual_seed(0))
    E2 = torch.randn(V, d_in, generator=torch.Generator().manual_seed(1))
    prev = torch.cat([windows[:, :1], windows[:, :-1]], 1)
    return E[windows] + 0.5 * E2[prev] + 0.3 * torch.randn(*windows.shape, d_in, generator=g)


def sae(d_in: int, d_sae: int) -> Dictionary:
    g = torch.Generator().manual_seed(2)
    W = torch.randn(d_in, d_sae, generator=g) / d_in**0.5
    b = torch.full((d_sae,), -2.2)  # pre-activations are about N(0, 1.25): ~3% fire
    return Dictionary(encode=lambda x: torch.relu(x @ W + b), W_dec=W.T.contiguous(), hook_name=HOOK)


def batches(windows: torch.Tensor, acts: torch.Tensor, per: int = 32):
    for i in range(0, len(windows), per):
        yield windows[i : i + per], {HOOK: acts[i : i + per]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=100_000, help="tokens per split (train and held-out)")
    ap.add_argument("--features", default="64,256,1024", help="numbers of features to score, one run each")
    ap.add_argument("--d-in", type=int, default=256)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of every measurement")
    ap.add_argument("--bases", default="neurons,sae,random,rotated,pca,ica", help="(d): the bases, '' to skip")
    ap.add_argument("--basis-features", type=int, default=100, help="(d): units scored per basis")
    args, out = start(ap, "scoring")
    torch.manual_seed(0)
    tok = gpt2_tokenizer()
    train = token_windows("offline", tok, context_size=128, split="train", max_tokens=args.tokens)
    held = token_windows("offline", tok, context_size=128, split="heldout", max_tokens=args.tokens)
    x_train, x_held = synthetic(train, args.d_in, 10), synthetic(held, args.d_in, 11)
    dic = sae(args.d_in, args.d_sae)
    out.say(f"train {train.numel():,} tokens, held-out {held.numel():,} tokens (real GPT-2 tokens of the offline corpus), "
            f"synthetic activations d_in {args.d_in}, SAE d_sae {args.d_sae}; {args.repeats} interleaved rounds after 1 warm-up")
    fired = {}

    def read_only():
        n = 0
        for split_w, split_x in ((train, x_train), (held, x_held)):
            for _t, a in batches(split_w, split_x):
                z = dic.encode(a[HOOK].reshape(-1, args.d_in))
                n += int((z > 0).sum())
        fired["n"] = n

    runs: dict[int, list] = {}

    def scorer(n):
        cfg = ScoringConfig(n_features=n)
        runs[n] = []
        return lambda: runs[n].append(score_features(dic, batches(train, x_train), batches(held, x_held), cfg=cfg, tokenizer=tok))

    ns = [int(x) for x in args.features.split(",")]
    fns = {"(a)": read_only, **{f"N={n}": scorer(n) for n in ns}}
    t = interleave(fns, args.repeats, warmup=1)
    for n in ns:
        runs[n] = runs[n][1:]  # the warm-up's result is left out
    density = fired["n"] / ((train.numel() + held.numel()) * args.d_sae)
    out.say(f"(a) baseline, read + encode both splits: {Spread(t['(a)']).fmt('.2f')} s (feature density {density:.3f})")
    out.say("| N features | wall s | features/s | x (a), per round | train pass s | held-out pass s | explain s "
            "| simulate+score s | (c) ms/feature | mean score [95% CI] |")
    out.say("|---|---|---|---|---|---|---|---|---|---|")
    for n in ns:
        rs, wall = runs[n], t[f"N={n}"]
        m = len(rs[0].scores)
        sec = lambda k: Spread([r.meta["seconds"][k] for r in rs])  # noqa: E731
        per = Spread([(r.meta["seconds"]["explain"] + r.meta["seconds"]["simulate_and_score"]) / m * 1000 for r in rs])
        mean, (lo, hi) = rs[0].summary["mean_score"], rs[0].summary["ci95"]
        out.say(f"| {m} | {Spread(wall).fmt('.2f')} | {Spread([m / w for w in wall]).fmt(',.1f')} | {ratios(wall, t['(a)']).fmt('.2f')} "
                f"| {sec('train_pass_all').fmt('.2f')} | {sec('heldout_pass_all').fmt('.2f')} | {sec('explain').fmt('.2f')} "
                f"| {sec('simulate_and_score').fmt('.2f')} | {per.fmt('.2f')} | {mean:.3f} [{lo:.3f}, {hi:.3f}] |")
    r = runs[ns[-1]][0]
    best = r.scores[max(range(len(r.scores)), key=lambda i: r.scores[i].score)]
    out.say(f"example: feature {best.feature} scores {best.score:.3f}: {best.explanation.text[:150]}")
    if args.bases:
        per_basis(args, tok, train, held, x_train, x_held, dic, out)
    out.save()


def basis_dictionaries(names: list[str], x_train: torch.Tensor, dic: Dictionary, n: int) -> dict[str, Dictionary]:
    d = x_train.shape[-1]
    fit = x_train[:, 1:].reshape(-1, d)[:16384].numpy()
    out = {}
    for name in names:
        if name == "neurons":
            out[name] = signed_neurons(Dictionary(encode=lambda x: x, W_dec=torch.eye(d), hook_name=HOOK, kind="neurons"))
        elif name == "sae":
            out[name] = dic
        elif name == "random":
            out[name] = projection_basis(name, random_directions(d, n, 0), HOOK)
        elif name == "rotated":
            out[name] = projection_basis(name, rotation_columns(d, min(n, d), 0), HOOK)
        elif name in ("pca", "ica"):
            mean, comps = fit_pca(fit) if name == "pca" else fit_ica(fit, min(64, d))
            out[name] = projection_basis(name, torch.from_numpy(comps.T.copy()), HOOK, mean=torch.from_numpy(mean))
        else:
            raise SystemExit(f"(d) has no basis {name!r} (sae-random-model needs a model: see compare-layers)")
    return out


def per_basis(args, tok, train, held, x_train, x_held, dic, out) -> None:
    names = [b for b in args.bases.split(",") if b]
    dicts = basis_dictionaries(names, x_train, dic, args.basis_features)
    cfg = ScoringConfig(n_features=args.basis_features)
    nobands = ScoringConfig(n_features=args.basis_features, bands=None)
    got: dict[str, list] = {"shared": [], "shared, no band score": []}

    def shared(c, key):
        got[key].append(score_many({k: (v, None) for k, v in dicts.items()}, batches(train, x_train), batches(held, x_held), c, tok))

    def separate():
        for k, v in dicts.items():
            score_many({k: (v, None)}, batches(train, x_train), batches(held, x_held), cfg, tok)

    t = interleave({"shared": lambda: shared(cfg, "shared"), "shared, no band score": lambda: shared(nobands, "shared, no band score"),
                    "one pass per basis": separate}, args.repeats, warmup=0)
    first = [next(iter(r.values())).meta["seconds"] for r in got["shared"]]
    out.say(f"(d) {len(dicts)} bases, {args.basis_features} units each, from ONE shared pass per split: {Spread(t['shared']).fmt('.2f')} s "
            f"(train pass {Spread([f['train_pass_all'] for f in first]).fmt('.2f')} s, held-out pass "
            f"{Spread([f['heldout_pass_all'] for f in first]).fmt('.2f')} s); one pass per basis: {Spread(t['one pass per basis']).fmt('.2f')} s, "
            f"{ratios(t['one pass per basis'], t['shared']).fmt('.2f')}x the shared pass, round by round")
    out.say("| basis | units | explain ms/unit | simulate+score ms/unit (top-and-random, random-only, detection) "
            "| band score ms/unit | units/s, all four scores | units/s, without the band score | mean top-and-random |")
    out.say("|---|---|---|---|---|---|---|---|")
    for k in dicts:
        rows = list(zip(got["shared"], got["shared, no band score"]))
        n = len(rows[0][0][k].scores)
        s = [(a[k].meta["seconds"], b[k].meta["seconds"]) for a, b in rows]
        band = Spread([max(0.0, x["simulate_and_score"] - y["simulate_and_score"]) / n * 1000 for x, y in s])
        all4 = Spread([n / (x["explain"] + x["simulate_and_score"]) for x, _ in s])
        three = Spread([n / (y["explain"] + y["simulate_and_score"]) for _, y in s])
        out.say(f"| {k} | {n} | {Spread([x['explain'] / n * 1000 for x, _ in s]).fmt('.2f')} "
                f"| {Spread([y['simulate_and_score'] / n * 1000 for _, y in s]).fmt('.2f')} | {band.fmt('.2f')} "
                f"| {all4.fmt(',.0f')} | {three.fmt(',.0f')} | {rows[0][0][k].summary['kinds']['top_random']['mean_undefined_at_chance']:.3f} |")


if __name__ == "__main__":
    main()
