"""SAE training-step throughput on this machine, against its own fp32 matmul peak.

    python bench/sae_train.py                 # d_in 576 and 768, expansion 8, batch 4096, k 32
    python bench/sae_train.py --d-in 576 --archs topk topk+auxk --steps 10

For each architecture: median tokens/s over timed steps, and GFLOP/s as a share of the peak of
an fp32 (4096x576)@(576x4608) matmul, timed between the steps of that same architecture. "dense-equivalent" counts the
12 * d_in * d_sae FLOPs per token a dense step does (encoder and decoder, forward and
backward), so it compares recipes; "actual" counts what our kernels compute (the TopK family
skips most of it). `topk+auxk` keeps half the latents dead so AuxK runs every step.

To compare with another implementation, call `time_steps(...)` or `make_trainer(...)` +
`run_steps(...)` from here. `--saelens` (in an environment that also has sae-lens 6) times
sae-lens's own training step (training_forward_pass, firing counts, backward, gradient clipping,
Adam: what its SAETrainer does) on the same batch, interleaved step by step with ours so both see
the same machine load. `--cpu-time` runs one thread and counts process CPU time: on a machine
shared with other jobs, wall-clock times of two threads are dominated by contention."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sae import SAEConfig, TrainConfig, Trainer, create_sae  # noqa: E402


class MatmulPeak:
    """fp32 (4096x576)@(576x4608), timed once per call: the machine's matmul speed right now."""

    def __init__(self, m: int = 4096, k: int = 576, n: int = 4608):
        self.a, self.b, self.out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        self.flop = 2 * m * k * n
        torch.mm(self.a, self.b, out=self.out)

    def sample(self) -> float:  # GFLOP/s
        t = _clock()
        torch.mm(self.a, self.b, out=self.out)
        return self.flop / (_clock() - t) / 1e9


def make_trainer(arch: str, d_in: int, d_sae: int, k: int = 32, batch: int = 4096, seed: int = 0) -> tuple[Trainer, torch.Tensor]:
    """A trainer for `arch` initialised on a synthetic batch, and that batch [batch, d_in].
    arch: topk, batchtopk, relu, jumprelu; 'topk+auxk' keeps half the latents dead so AuxK
    runs every step; 'relu@3%' shifts the encoder biases so each latent fires on 3% of tokens,
    as a trained ReLU SAE does (fresh ones fire on half)."""
    name = arch.split("+")[0].split("@")[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, d_in, generator=g) + 0.5 * torch.randn(d_in, generator=g)
    cfg = SAEConfig(name, d_in, d_sae, k=k if "topk" in name else None)
    trainer = Trainer(create_sae(cfg), TrainConfig(steps=10**6, seed=seed))
    trainer.initialize(x)
    trainer.force_dead = "+auxk" in arch
    if "@" in arch:
        density = float(arch.split("@")[1].rstrip("%")) / 100
        sae = trainer.sae
        with torch.no_grad():
            pre = sae.pre_acts(x * sae.cfg.activation_scale)
            sae.b_enc.sub_(pre.kthvalue(max(1, int((1 - density) * batch)), dim=0).values)
        trainer.step(x)  # the first step counts active latents; later steps see the density
    return trainer, x


_clock = time.perf_counter  # --cpu-time switches to time.process_time


def run_steps(trainer: Trainer, x: torch.Tensor, n: int) -> list[float]:
    """Seconds taken by each of n training steps on batch x."""
    times = []
    for _ in range(n):
        if getattr(trainer, "force_dead", False):
            trainer.tokens_since_fired[::2] = trainer.cfg.dead_tokens
        t = _clock()
        trainer.step(x)
        times.append(_clock() - t)
    return times


def time_steps(arch: str, d_in: int, d_sae: int, k: int = 32, batch: int = 4096, steps: int = 6,
               warmup: int = 2, peak: MatmulPeak | None = None) -> tuple[float, float]:
    """(median seconds per training step, median matmul GFLOP/s measured between the steps).
    Interleaving the two keeps the ratio honest when other jobs load the machine unevenly."""
    trainer, x = make_trainer(arch, d_in, d_sae, k, batch)
    run_steps(trainer, x, warmup)
    peak = peak or MatmulPeak()
    secs, peaks = [], []
    for _ in range(steps):
        peaks.append(peak.sample())
        secs += run_steps(trainer, x, 1)
    return statistics.median(secs), statistics.median(peaks)


def saelens_step(arch: str, d_in: int, d_sae: int, k: int = 32):
    """A function x -> None doing one sae-lens training step for topk / topk+auxk / relu."""
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    if arch.startswith("topk"):
        model, coefficients = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k)), {}
    elif arch.startswith("relu"):  # its dense step costs the same at any density
        model, coefficients = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=5.0)), {"l1": 5.0}
    else:
        raise ValueError(f"no sae-lens counterpart wired up for {arch}")
    opt = torch.optim.Adam(model.parameters(), lr=4e-4)
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[::2] = "+auxk" in arch  # half the latents dead, as for ours
    since, freq = torch.zeros(d_sae), torch.zeros(d_sae)

    def step(x: torch.Tensor) -> None:
        out = model.training_forward_pass(TrainStepInput(
            sae_in=x, coefficients=coefficients, dead_neuron_mask=dead if bool(dead.any()) else None,
            n_training_steps=0, is_logging_step=False))
        with torch.no_grad():
            fired = out.feature_acts.bool().float()
            since.add_(1)
            since[fired.sum(-2).bool()] = 0
            freq.add_(fired.sum(0))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return step


def compare_with_saelens(archs: list[str], d_in: int, d_sae: int, k: int, batch: int, steps: int) -> None:
    print("| recipe | d_in | sae-lens tokens/s | interp tokens/s | ratio |\n| --- | --- | --- | --- | --- |")
    for arch in archs:
        trainer, x = make_trainer(arch, d_in, d_sae, k, batch)
        theirs_step = saelens_step(arch, d_in, d_sae, k)
        run_steps(trainer, x, 1)
        theirs_step(x)
        ours, theirs = [], []
        for _ in range(steps):
            ours += run_steps(trainer, x, 1)
            t = _clock()
            theirs_step(x)
            theirs.append(_clock() - t)
        a, b = batch / statistics.median(theirs), batch / statistics.median(ours)
        print(f"| {arch} | {d_in} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x |", flush=True)


def actual_flops_per_token(arch: str, d_in: int, d_sae: int, k: int) -> float:
    name = arch.split("+")[0].split("@")[0]
    if "@" in arch:  # sparse path: the encoder forward, then four sparse passes over the active pairs
        return 2 * d_in * d_sae + 8 * d_in * d_sae * float(arch.split("@")[1].rstrip("%")) / 100
    if name in ("topk", "batchtopk"):
        # dense encoder forward; sparse decode fwd/bwd (3 x k rows) and encoder weight grad (k rows)
        flops = 2 * d_in * d_sae + 8 * k * d_in
        if "+auxk" in arch:
            flops += 8 * (d_in // 2) * d_in
        return flops
    return 10 * d_in * d_sae  # no input gradient: 5 of a dense step's 6 matmuls


def main(argv: list[str] | None = None) -> None:
    global _clock
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-in", type=int, nargs="+", default=[576, 768])
    p.add_argument("--expansion", type=int, default=8)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--archs", nargs="+", default=["topk", "topk+auxk", "batchtopk", "relu", "relu@3%", "jumprelu"])
    p.add_argument("--steps", type=int, default=4, help="timed steps per architecture (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cpu-time", action="store_true", help="one thread, timed by process CPU time")
    p.add_argument("--saelens", action="store_true", help="side by side with sae-lens (topk, topk+auxk, relu)")
    args = p.parse_args(argv)
    if args.threads or args.cpu_time:
        torch.set_num_threads(1 if args.cpu_time else args.threads)
    _clock = time.process_time if args.cpu_time else time.perf_counter
    peak = MatmulPeak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"{'process CPU time' if args.cpu_time else 'wall clock'}\n")
    if args.saelens:
        for d_in in args.d_in:
            archs = [a for a in args.archs if a.split("@")[0] in ("topk", "topk+auxk", "relu")]
            compare_with_saelens(archs, d_in, d_in * args.expansion, args.k, args.batch, args.steps)
        return
    print("| arch | d_in | d_sae | tokens/s | step ms | matmul peak GFLOP/s | dense-equiv GFLOP/s | % peak "
          "| actual GFLOP/s | % peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d_in in args.d_in:
        d_sae = d_in * args.expansion
        for arch in args.archs:
            sec, gflops = time_steps(arch, d_in, d_sae, args.k, args.batch, args.steps, peak=peak)
            tps = args.batch / sec
            dense = 12 * d_in * d_sae * tps / 1e9
            actual = actual_flops_per_token(arch, d_in, d_sae, args.k) * tps / 1e9
            print(f"| {arch} | {d_in} | {d_sae} | {tps:,.0f} | {sec * 1e3:.0f} | {gflops:.0f} | {dense:.0f} "
                  f"| {dense / gflops:.0%} | {actual:.0f} | {actual / gflops:.0%} |", flush=True)


if __name__ == "__main__":
    main()
