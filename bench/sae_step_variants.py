"""What each shortcut of the TopK-family step buys: the step with and without the native kernels
(sae/native.py) and with and without its small operators on one thread (sae/threads.py),
interleaved round by round with the step's encoder bound, in one process.

    python bench/sae_step_variants.py --archs topk batchtopk --threads 1 --steps 8
    python bench/sae_step_variants.py --archs topk --threads 2 --results

Each variant has its own trainer (same seed, same batch); "bound/step" is taken per round."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Spread, interleave, ratios, start  # noqa: E402
from bench.sae_train import EncoderBound, make_trainer  # noqa: E402
from sae import native  # noqa: E402

VARIANTS = {  # name: (native kernels, small operators on one thread)
    "as landed": (True, True),
    "torch path": (False, True),
    "all threads": (True, False),
    "before (torch path, all threads)": (False, False),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["topk", "batchtopk"])
    p.add_argument("--d-in", type=int, default=576)
    p.add_argument("--steps", type=int, default=8, help="timed rounds")
    args, out = start(p, "sae_step_variants")
    module = native.kernels()
    out.say(f"native kernels: {'built' if module is not None else 'unavailable (every variant runs the torch path)'}; "
            f"{args.steps} interleaved rounds; ms median [min, max] (n)\n")
    out.say("| arch | variant | step ms | bound ms | bound/step |\n| --- | --- | --- | --- | --- |")
    for arch in args.archs:
        fns, bound = {}, None
        for name, (use_native, one_thread) in VARIANTS.items():
            trainer, x = make_trainer(arch, args.d_in, args.d_in * 8)
            trainer.small_ops_on_one_thread = one_thread and trainer.sae.sparse_step
            bound = bound or EncoderBound(trainer, x)

            def step(trainer=trainer, x=x, use_native=use_native):
                native._state["module"] = module if use_native else None
                try:
                    if getattr(trainer, "force_dead", False):
                        trainer.tokens_since_fired[::2] = trainer.cfg.dead_tokens
                    trainer.step(x)
                finally:
                    native._state["module"] = module
            fns[name] = step
        t = interleave({"bound": bound, **fns}, args.steps, warmup=2)
        for name in VARIANTS:
            out.say(f"| {arch} | {name} | {Spread(t[name]).fmt('.0f', 1e3)} | {Spread(t['bound']).fmt('.0f', 1e3)} "
                    f"| {ratios(t['bound'], t[name]).fmt('.3f')} |")
    out.save()


if __name__ == "__main__":
    main()
