"""SAE training-step throughput on this machine, against its own fp32 matmul peak.

    python bench/sae_train.py                 # d_in 576 and 768, expansion 8, batch 4096, k 32
    python bench/sae_train.py --d-in 576 --archs topk topk+auxk --steps 10

For each architecture: tokens/s over timed steps (median [min, max]), and GFLOP/s as a share of
the peak of an fp32 (4096x576)@(576x4608) matmul, timed between the steps of that same
architecture. "bound" is the step's own dense encoder product, (x - b_dec) @ W_enc + b_enc on
the same batch and weights into a kept buffer: no TopK step can be faster. "bound/step" is taken
round by round (the bound timed right before each step) and printed as median [min, max]. "dense-equivalent" counts the
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
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Results, Spread, add_common_args, apply_threads, interleave, ratios  # noqa: E402
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


class EncoderBound:
    """The dense encoder product of a trainer's own step, on its batch: the floor of a TopK step."""

    def __init__(self, trainer: Trainer, x: torch.Tensor):
        sae = trainer.sae
        with torch.no_grad():
            self.xc = x * sae.cfg.activation_scale - sae.b_dec
        self.sae = sae
        self.out = torch.empty(x.shape[0], sae.cfg.d_sae, dtype=x.dtype)

    def __call__(self) -> None:
        with torch.no_grad():
            torch.addmm(self.sae.b_enc, self.xc, self.sae.W_enc, out=self.out)


def time_steps(arch: str, d_in: int, d_sae: int, k: int = 32, batch: int = 4096, steps: int = 6,
               warmup: int = 2, peak: MatmulPeak | None = None) -> dict[str, Spread]:
    """Seconds per training step, the encoder bound's seconds, bound/step round by round, and the
    matmul GFLOP/s, each over `steps` interleaved rounds (the machine's load hits all alike)."""
    trainer, x = make_trainer(arch, d_in, d_sae, k, batch)
    run_steps(trainer, x, warmup)
    peak = peak or MatmulPeak()
    bound = EncoderBound(trainer, x)
    gflops: list[float] = []
    t = interleave({"peak": lambda: gflops.append(peak.sample()), "bound": bound,
                    "step": lambda: run_steps(trainer, x, 1)}, steps, warmup=0, clock=_clock)
    return {"step": Spread(t["step"]), "bound": Spread(t["bound"]), "share": ratios(t["bound"], t["step"]),
            "gflops": Spread(gflops)}


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


def compare_with_saelens(out: Results, archs: list[str], d_in: int, d_sae: int, k: int, batch: int, steps: int) -> None:
    out.say("| recipe | d_in | sae-lens tokens/s | interp tokens/s | ratio, median [min, max] over rounds |")
    out.say("| --- | --- | --- | --- | --- |")
    for arch in archs:
        trainer, x = make_trainer(arch, d_in, d_sae, k, batch)
        theirs_step = saelens_step(arch, d_in, d_sae, k)
        t = interleave({"ours": lambda: run_steps(trainer, x, 1), "theirs": lambda: theirs_step(x)}, steps, clock=_clock)
        a, b = batch / statistics.median(t["theirs"]), batch / statistics.median(t["ours"])
        out.say(f"| {arch} | {d_in} | {a:,.0f} | {b:,.0f} | {ratios(t['theirs'], t['ours']).fmt('.2f')} |")


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
    p.add_argument("--steps", type=int, default=6, help="timed rounds per architecture (after 2 warm-up steps)")
    p.add_argument("--cpu-time", action="store_true", help="one thread, timed by process CPU time")
    p.add_argument("--saelens", action="store_true", help="side by side with sae-lens (topk, topk+auxk, relu)")
    add_common_args(p)
    args = p.parse_args(argv)
    apply_threads(1 if args.cpu_time else args.threads)
    _clock = time.process_time if args.cpu_time else time.perf_counter
    out = Results("sae_train", args.results)
    out.say(f"clock: {'process CPU time' if args.cpu_time else 'wall clock'}; batch {args.batch}, k {args.k}, "
            f"{args.steps} interleaved rounds of (matmul peak, encoder bound, step)\n")
    if args.saelens:
        for d_in in args.d_in:
            archs = [a for a in args.archs if a.split("@")[0] in ("topk", "topk+auxk", "relu")]
            compare_with_saelens(out, archs, d_in, d_in * args.expansion, args.k, args.batch, args.steps)
        out.save()
        return
    peak = MatmulPeak()
    out.say("| arch | d_in | d_sae | tokens/s | step ms | bound ms | bound/step | peak GFLOP/s | dense-equiv % peak "
            "| actual % peak |")
    out.say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d_in in args.d_in:
        d_sae = d_in * args.expansion
        for arch in args.archs:
            r = time_steps(arch, d_in, d_sae, args.k, args.batch, args.steps, peak=peak)
            sec, gflops = r["step"].median, r["gflops"].median
            tps = args.batch / sec
            dense = 12 * d_in * d_sae * tps / 1e9
            actual = actual_flops_per_token(arch, d_in, d_sae, args.k) * tps / 1e9
            out.say(f"| {arch} | {d_in} | {d_sae} | {tps:,.0f} | {r['step'].fmt('.0f', 1e3)} | {r['bound'].median * 1e3:.1f} "
                    f"| {r['share'].fmt('.2f')} | {r['gflops'].fmt('.0f')} | {dense / gflops:.0%} | {actual / gflops:.0%} |")
    out.say("\nbound/step: the dense encoder product's time over the whole step's, per round; 1.0 would be a step "
            "that costs only its encoder product.")
    out.save()


if __name__ == "__main__":
    main()
