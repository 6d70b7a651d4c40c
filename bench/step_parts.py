"""Where a TopK / BatchTopK training step's time goes, part by part, without a profiler.

    python bench/step_parts.py --archs topk batchtopk --threads 1 --steps 16

torch.profiler records every operator and, on this machine, roughly doubles some of the sparse
passes (bench/results/sae_train_profile.md): its split is read as shares, never as times. Here
each part of the step is a function of the trainer or of the SAE, wrapped by a timer for the
run: the encoder product (pre_into_buffer), the selection, the decoder forward with its error,
the backward, the decoder's row projection, clipping, Adam, and the rest. Each part's time is
per step, median [min, max] over the timed steps, printed beside the encoder bound timed
right before each step (bench/sae_train.py's EncoderBound) and bound/step per round."""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sae.base  # noqa: E402
import sae.batchtopk  # noqa: E402
import sae.kernels  # noqa: E402
import sae.topk  # noqa: E402
import sae.trainer  # noqa: E402
from bench.harness import Spread, ratios, start  # noqa: E402
from bench.sae_train import EncoderBound, make_trainer  # noqa: E402

PARTS = [  # (module or class, function name, label)
    (sae.base.SAE, "pre_into_buffer", "encoder product (x - b_dec, addmm)"),
    (sae.topk, "topk_rows", "selection"),
    (sae.batchtopk, "batch_topk", "selection"),
    (sae.kernels.Bags, "build", "pairs grouped by latent"),
    (sae.topk, "encode_decode_error", "decoder forward + error"),
    (sae.batchtopk, "encode_decode_error", "decoder forward + error"),
    (sae.topk, "topk_family_output", "loss terms, firing"),
    (sae.batchtopk, "topk_family_output", "loss terms, firing"),
    (torch.Tensor, "backward", "backward"),
    (sae.trainer, "spread", "batch variance"),
    (sae.trainer, "_remove_parallel_grad", "decoder gradient projection"),
    (sae.trainer, "_clip_gradients", "gradient norm, clipping"),
    (sae.trainer, "_adam_step", "Adam"),
    (sae.trainer, "_unit_rows", "decoder renorm"),
]


def timed_parts() -> dict[str, float]:
    """Wrap every part with a timer; returns the dict they add their seconds to."""
    spent: dict[str, float] = defaultdict(float)
    for owner, name, label in PARTS:
        fn = getattr(owner, name)

        def timed(*a, fn=fn, label=label, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] += time.perf_counter() - t
        setattr(owner, name, timed)
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["topk", "batchtopk"], choices=["topk", "batchtopk"])
    p.add_argument("--d-in", type=int, default=576)
    p.add_argument("--steps", type=int, default=16, help="timed steps")
    args, out = start(p, "step_parts")
    spent = timed_parts()
    for arch in args.archs:
        trainer, x = make_trainer(arch, args.d_in, args.d_in * 8)
        for _ in range(3):
            trainer.step(x)
        bound = EncoderBound(trainer, x)
        per: dict[str, list[float]] = defaultdict(list)
        steps, bounds = [], []
        for _ in range(args.steps):
            t = time.perf_counter()
            bound()
            bounds.append(time.perf_counter() - t)
            spent.clear()
            t = time.perf_counter()
            trainer.step(x)
            steps.append(time.perf_counter() - t)
            for label, s in spent.items():
                per[label].append(s)
            per["rest (python, zero_grad, bookkeeping)"].append(steps[-1] - sum(spent.values()))
        out.say(f"{arch}, d_in {args.d_in}, d_sae {args.d_in * 8}, k 32, batch 4096: step {Spread(steps).fmt('.1f', 1e3)} ms, "
                f"bound {Spread(bounds).fmt('.1f', 1e3)} ms, bound/step {ratios(bounds, steps).fmt('.3f')}\n")
        out.say("| part | ms per step |\n| --- | --- |")
        for label, v in sorted(per.items(), key=lambda kv: -Spread(kv[1]).median):
            out.say(f"| {label} | {Spread(v).fmt('.2f', 1e3)} |")
        out.say("")
    out.save()


if __name__ == "__main__":
    main()
