"""How far 2 ranks (torchrun, gloo) drift from 1 process when training an SAE on the same global
batches, step by step, and why: the same run is repeated in float64, and in one process with
each batch's rows reversed (the same arithmetic summed in another order, no ranks involved).

    python bench/distributed_agreement.py --cache runs/acts --arch relu --steps 200
    python bench/distributed_agreement.py --cache runs/acts --arch relu --steps 200 --dtype float64

Prints, every --every steps, max|a - b| / max|a| of W_enc and W_dec, and the number of latents
whose firing differs between the two runs on a fixed probe batch. The reversed-rows run is the
baseline measured in the same run: "2 ranks / reversed" is how much more the ranks drift than
summing in another order does. With `--repeats N` the whole comparison runs for seeds
seed..seed+N-1 (initialisation and batch order); the per-step tables are the first seed's, and
the last step's drifts and ratio are given as median [min, max] over seeds."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import Results, Spread, add_common_args, ratios  # noqa: E402


def train(a: argparse.Namespace, out: Path, reverse: bool = False) -> None:
    """One run (on however many ranks this process group has), a checkpoint every a.every steps."""
    import sae as saelib
    from interp.store import ActivationStore
    from sae.sources import store_source

    store = ActivationStore(a.cache)
    hook = a.hook or store.hooks and next(iter(store.hooks))
    d = store.hooks[hook]
    cfg = saelib.SAEConfig(a.arch, d, d * a.expansion, k=a.k if "topk" in a.arch else None, hook_name=hook, dtype=a.dtype)
    sae = saelib.create_sae(cfg)
    tcfg = saelib.TrainConfig(steps=a.steps, lr=a.lr, checkpoint_every=a.every, keep_checkpoints=10**6, seed=a.seed)
    source = store_source(store, [hook], a.batch, a.seed, True, "cpu")

    def batches(start: int):
        for b in source(start):
            yield {h: x.flip(0) for h, x in b.items()} if reverse else b

    saelib.train_saes({hook: sae}, batches, tcfg, {hook: out}, progress=False)


def compare(a: argparse.Namespace, x: Path, y: Path, label: str, out: Results | None) -> dict[str, float]:
    """Prints the per-step table when `out` is given; returns the last step's relative drifts."""
    from safetensors.torch import load_file

    from interp.store import ActivationStore

    store = ActivationStore(a.cache)
    hook = a.hook or next(iter(store.hooks))
    probe = next(store.iter_batches([hook], min(4096, store.n_tokens // 2), seed=1))[hook].double()
    if out:
        out.say(f"\n{label}")
        out.say("| step | W_enc max|a-b|/max|a| | W_dec | b_enc | latents whose firing on a probe batch differs |")
        out.say("| --- | --- | --- | --- | --- |")
    for step in range(a.every, a.steps + 1, a.every):
        name = f"checkpoints/step_{step:09d}.safetensors"
        ta, tb = load_file(x / name), load_file(y / name)
        rel = {k: float((ta[f"sae.{k}"].double() - tb[f"sae.{k}"].double()).abs().max() / ta[f"sae.{k}"].double().abs().max())
               for k in ("W_enc", "W_dec", "b_enc")}
        scale = json.loads((x / name.replace(".safetensors", ".json")).read_text())["sae_cfg"]["activation_scale"]

        def fired(t):
            pre = (probe * scale - t["sae.b_dec"].double()) @ t["sae.W_enc"].double() + t["sae.b_enc"].double()
            return (pre > 0).any(0)

        flips = int((fired(ta) != fired(tb)).sum()) if a.arch == "relu" else "-"
        if out:
            out.say(f"| {step} | {rel['W_enc']:.2e} | {rel['W_dec']:.2e} | {rel['b_enc']:.2e} | {flips} |")
    return rel


def one_seed(a: argparse.Namespace, root: Path, out: Results | None) -> tuple[dict, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", __file__,
           *worker_flags(a), "--worker", str(root / "two")]
    subprocess.run(cmd, env=env, check=True)
    train(a, root / "one")
    train(a, root / "reversed", reverse=True)
    two = compare(a, root / "one", root / "two", f"{a.arch} {a.dtype}, seed {a.seed}: 1 process against 2 ranks (B/2 rows each)", out)
    rev = compare(a, root / "one", root / "reversed",
                  f"{a.arch} {a.dtype}, seed {a.seed}: 1 process against 1 process with each batch's rows reversed", out)
    return two, rev


def worker_flags(a: argparse.Namespace) -> list[str]:
    skip = ("worker", "repeats", "results", "threads")
    return [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items() if k not in skip and v is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True)
    p.add_argument("--hook", default=None)
    p.add_argument("--arch", default="relu")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--expansion", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="seeds (seed, seed+1, ...), each a whole comparison")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    add_common_args(p)
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    if a.worker:
        from interp import distributed

        distributed.setup("cpu")
        try:
            train(a, Path(a.worker))
        finally:
            distributed.shutdown()
        return
    out = Results("distributed_agreement", a.results)
    out.say(" ".join(sys.argv))
    first, two, rev = a.seed, [], []
    for r in range(a.repeats):
        a.seed = first + r
        with tempfile.TemporaryDirectory() as tmp:
            t, v = one_seed(a, Path(tmp), out if r == 0 else None)
        two.append(t)
        rev.append(v)
    out.say(f"\nlast step ({a.steps}), over {a.repeats} seed(s) from {first}: max|a-b|/max|a|, median [min, max]")
    out.say("| tensor | 1 process vs 2 ranks | 1 process vs reversed rows (baseline) | 2 ranks / reversed, per seed |")
    out.say("| --- | --- | --- | --- |")
    for k in ("W_enc", "W_dec", "b_enc"):
        x, y = [d[k] for d in two], [d[k] for d in rev]
        ratio = ratios(x, y).fmt(".2f") if all(y) else "- (the baseline is exact)"
        out.say(f"| {k} | {Spread(x).fmt('.2e')} | {Spread(y).fmt('.2e')} | {ratio} |")
    out.save()


if __name__ == "__main__":
    main()
