"""Explained variance after the same number of tokens: interp's SAE training against sae-lens's
SAETrainer, on the same real activations, fed in the same order.

    .venv-saelens/bin/python bench/sae_quality.py            # SmolLM2-135M layer 12 mlp_post, topk k32 4x
    .venv-saelens/bin/python bench/sae_quality.py --tokens 393216 --batch 512

Needs an environment holding sae-lens 6 as well as interp (`make saelens-env` builds
.venv-saelens). The activations come from `--acts` (train/ and heldout/ activation caches, as
`interp compare-layers` writes them); when that folder holds no recording of the hook, the
train and held-out windows of the offline text are recorded there first.

Runs, each on the same shuffled batches (BOS positions left out, as our training does):
- interp: `sae.train_sae` with the defaults `interp train-sae` uses (lr 4e-4 with warm-up and
  decay, b_dec at the geometric median, input scaled to E||x|| = sqrt(d), AuxK);
- sae-lens, its defaults: `SAETrainer.fit()` with TopKTrainingSAE (constant lr 3e-4), input
  normalisation "expected_average_only_in" (the same scaling as ours);
- sae-lens, our schedule: the same, with lr 4e-4, the same warm-up steps and the last 20% decayed.
Each is scored on the held-out activations: explained variance, MSE, L0, dead fraction. The
norm estimate (sae-lens) and the initialisation (interp) read a few batches before training;
those are not counted as training tokens.

`--repeats N` trains every run N times, with seeds seed..seed+N-1 (the SAE's initialisation and
the batch order), the runs taking turns seed after seed (ABBA); each column is then
median [min, max] over seeds, and "EV - interp's" is taken seed by seed, against the interp run
that read the same batches."""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Results, Spread, add_common_args, apply_threads, interleave  # noqa: E402
from interp.store import ActivationStore  # noqa: E402


def acts_caches(acts: Path, hook: str, model_name: str, train_tokens: int, heldout_tokens: int) -> tuple[ActivationStore, ActivationStore]:
    """(train, held-out) caches holding `hook`: the ones in `acts` if they hold this text (as
    compare-layers records them), else recorded there now."""
    import interp
    from interp.pipelines.compare_layers import record_split

    model = interp.load_model(model_name)
    caches = []
    for split, n in (("train", train_tokens), ("heldout", heldout_tokens)):
        windows = interp.token_windows("offline", model.tokenizer, 128, split=split, max_tokens=n)[: n // 128]
        caches.append(record_split(model, windows, [hook], acts, split)[hook])
    return caches[0], caches[1]


def batches(cache: ActivationStore, hook: str, batch: int, seed: int, start: int = 0):
    """Endless shuffled [batch, d] float32 batches of `hook`, BOS positions left out."""
    for b in cache.iter_batches([hook], batch, seed=seed, start_step=start, skip_bos=True):
        yield b[hook]


def heldout_rows(cache: ActivationStore, hook: str, n: int) -> torch.Tensor:  # [n, d]
    rows = []
    for _, acts in cache.iter_windows([hook]):
        rows.append(acts[hook][:, 1:].reshape(-1, acts[hook].shape[-1]))  # BOS left out
        if sum(len(r) for r in rows) >= n:
            break
    return torch.cat(rows)[:n]


def train_interp(cache, hook, d_in, args) -> torch.nn.Module:
    import sae as saelib
    from sae.runs import train_config

    cfg = saelib.SAEConfig("topk", d_in=d_in, d_sae=args.expansion * d_in, k=args.k, hook_name=hook)
    tcfg = train_config(args.tokens, args.batch, checkpoint_every=10**9, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        return saelib.train_sae(saelib.create_sae(cfg), lambda s: batches(cache, hook, args.batch, args.seed, s),
                                tcfg, tmp, resume=False, progress=False)


def train_saelens(cache, hook, d_in, args, matched: bool) -> torch.nn.Module:
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    import sae as saelib

    torch.manual_seed(args.seed)
    model = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=args.expansion * d_in, k=args.k,
                                                  normalize_activations="expected_average_only_in"))
    steps = args.tokens // args.batch
    schedule = {"lr_end": 3e-5}  # SAETrainer needs one even when constant (its runner's default: lr / 10)
    if matched:
        ours = saelib.TrainConfig(steps=steps)
        schedule = dict(lr=ours.lr, lr_warm_up_steps=ours.lr_warmup(),
                        lr_decay_steps=steps - int(ours.lr_decay_start * steps), lr_end=0.0)
    cfg = SAETrainerConfig(total_training_samples=steps * args.batch, train_batch_size_samples=args.batch,
                           n_batches_for_norm_estimate=args.norm_batches, **schedule)
    # the norm estimate reads its own batches first (as interp's initialisation does), then
    # training starts on batch 0, as ours does
    norm = itertools.islice(batches(cache, hook, args.batch, args.seed + 1), args.norm_batches)
    provider = itertools.chain(norm, batches(cache, hook, args.batch, args.seed))
    return SAETrainer(cfg, model, provider).fit()


@torch.no_grad()
def score(sae: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Held-out metrics of an SAE reading raw activations x [n, d] (ours and sae-lens's alike)."""
    from sae.metrics import explained_variance, l0, mse

    z = sae.encode(x)
    x_hat = sae.decode(z)
    fired = (z > 0).any(0)
    return {"ev": explained_variance(x, x_hat), "mse": mse(x, x_hat), "l0": l0(z), "dead": 1 - fired.float().mean().item()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acts", type=Path, default=Path("runs/depth-smollm2/acts"))
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--hook", default="blocks.12.mlp.hook_post")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--expansion", type=int, default=4)
    p.add_argument("--tokens", type=int, default=196_608, help="training tokens, the same for every run")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--heldout", type=int, default=16_384, help="held-out tokens scored")
    p.add_argument("--norm-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="interp,saelens,saelens-matched", help="which runs, comma-separated")
    p.add_argument("--repeats", type=int, default=1, help="seeds per run (seed, seed+1, ...), the runs interleaved")
    add_common_args(p)
    args = p.parse_args(argv)
    apply_threads(args.threads)

    out = Results("sae_quality", args.results)
    out.say("quality, not speed, is compared here; train s is wall clock\n")
    train, held = acts_caches(args.acts, args.hook, args.model, 98_304, 24_576)
    x = heldout_rows(held, args.hook, args.heldout)
    d_in = x.shape[1]
    steps = args.tokens // args.batch
    out.say(f"{args.model} {args.hook}: topk k={args.k}, d_sae={args.expansion * d_in}, {steps} steps of {args.batch} "
            f"tokens ({steps * args.batch:,} tokens) from {train.n_tokens:,} recorded; scored on {len(x):,} held-out tokens; "
            f"{args.repeats} seed(s) from {args.seed}\n")
    fits = {"interp": ("interp (defaults)", lambda a: train_interp(train, args.hook, d_in, a)),
            "saelens": ("sae-lens (its defaults)", lambda a: train_saelens(train, args.hook, d_in, a, matched=False)),
            "saelens-matched": ("sae-lens (our lr schedule)", lambda a: train_saelens(train, args.hook, d_in, a, matched=True))}
    names = args.runs.split(",")
    scores: dict[str, list[dict]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        seeded = copy.copy(args)
        seeded.seed = args.seed + r

        def run(n, a=seeded):
            sae = fits[n][1](a)
            sae.eval()
            scores[n].append(score(sae, x))

        order = names if r % 2 == 0 else names[::-1]
        t = interleave({n: (lambda n=n: run(n)) for n in order}, 1, warmup=0)
        for n in names:
            seconds[n] += t[n]
    out.say("| run | train s | held-out EV | EV - interp's, per seed | MSE | L0 | dead |\n| --- | --- | --- | --- | --- | --- | --- |")
    for n in names:
        col = lambda k, n=n: Spread([m[k] for m in scores[n]])  # noqa: E731
        diff = (Spread([m["ev"] - o["ev"] for m, o in zip(scores[n], scores["interp"])]).fmt("+.4f")
                if "interp" in scores and n != "interp" else "-")
        out.say(f"| {fits[n][0]} | {Spread(seconds[n]).fmt('.0f')} | {col('ev').fmt('.4f')} | {diff} | {col('mse').fmt('.4g')} "
                f"| {col('l0').fmt('.1f')} | {col('dead').fmt('.1%')} |")
    out.save()


if __name__ == "__main__":
    main()
