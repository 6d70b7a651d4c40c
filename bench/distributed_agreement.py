"""How far 2 ranks (torchrun, gloo) drift from 1 process when training an SAE on the same global
batches, step by step, and why: the same run is repeated in float64, and in one process with
each batch's rows reversed (the same arithmetic summed in another order, no ranks involved).

    python bench/distributed_agreement.py --cache runs/acts --arch relu --steps 200
    python bench/distributed_agreement.py --cache runs/acts --arch relu --steps 200 --dtype float64

Prints, every --every steps, max|a - b| / max|a| of W_enc and W_dec, and the number of latents
whose firing differs between the two runs on a fixed probe batch."""

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

from bench.harness import machine  # noqa: E402


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
    tcfg = saelib.TrainConfig(steps=a.steps, lr=a.lr, checkpoint_every=a.every, keep_checkpoints=10**6)
    source = store_source(store, [hook], a.batch, 0, True, "cpu")

    def batches(start: int):
        for b in source(start):
            yield {h: x.flip(0) for h, x in b.items()} if reverse else b

    saelib.train_saes({hook: sae}, batches, tcfg, {hook: out}, progress=False)


def compare(a: argparse.Namespace, x: Path, y: Path, label: str) -> None:
    from safetensors.torch import load_file

    from interp.store import ActivationStore

    store = ActivationStore(a.cache)
    hook = a.hook or next(iter(store.hooks))
    probe = next(store.iter_batches([hook], min(4096, store.n_tokens // 2), seed=1))[hook].double()
    print(f"\n{label}")
    print("| step | W_enc max|a-b|/max|a| | W_dec | b_enc | latents whose firing on a probe batch differs |")
    print("| --- | --- | --- | --- | --- |")
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
        print(f"| {step} | {rel['W_enc']:.2e} | {rel['W_dec']:.2e} | {rel['b_enc']:.2e} | {flips} |")


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
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
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
    print(machine())
    print(" ".join(sys.argv))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", __file__,
               *sys.argv[1:], "--worker", str(root / "two")]
        subprocess.run(cmd, env=env, check=True)
        train(a, root / "one")
        train(a, root / "reversed", reverse=True)
        compare(a, root / "one", root / "two", f"{a.arch} {a.dtype}: 1 process against 2 ranks (B/2 rows each)")
        compare(a, root / "one", root / "reversed", f"{a.arch} {a.dtype}: 1 process against 1 process with each batch's rows reversed")


if __name__ == "__main__":
    main()
