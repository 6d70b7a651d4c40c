"""One SAE's training state and its step: Adam with the schedules, the unit-norm decoder
constraint, dead-latent tracking, and (de)serialisation of all of it for checkpoints.

`Trainer.step(x)` takes one raw batch [B, d_in]; a loop (sae/loop.py) can drive several
trainers from one activation stream.

Under torchrun each rank steps on its own rows of the batch. The step's forward then goes
through DistributedDataParallel, whose backward sums the ranks' gradients bucket by bucket
while the rest of the backward still runs; the loss is each rank's share of the whole batch's
(sae/base.py), so the sum is the whole batch's gradient. Everything after the backward (the
decoder-norm projection, which is linear in the gradient, clipping, Adam) then sees identical
gradients on every rank and keeps the weights identical without further communication. Two
small all-reduces per step carry the rest: the batch's size and spread before the forward,
the metrics and the latents that fired after it (so dead-latent counts are global)."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from typing import Any

import torch
from torch.optim.adam import adam as adam_update

from interp import distributed
from interp.allocator import keep_freed_memory
from interp.training import check_finite, fused_adam, load_optimizer_tensors, optimizer_tensors
from sae import native
from sae.base import SAE, StepContext, StepOutput, spread
from sae.config import SAEConfig, TrainConfig
from sae.data_init import initial_b_dec, input_scale
from sae.errors import SAEError
from sae.schedule import lr_at, sparsity_at
from sae.threads import small_ops, wide


class Trainer:
    def __init__(self, sae: SAE, cfg: TrainConfig, name: str = ""):
        self.identity: dict[str, Any] = {}  # what else the result depends on (data source, ...): train_saes sets it
        self.sae, self.cfg = sae, cfg
        self.name = name or sae.cfg.hook_name or sae.name
        self.step_count = 0
        self.tokens = 0
        sae.requires_grad_(True).train()
        self.params = dict(sae.named_parameters())
        self.opt = fused_adam(torch.optim.Adam, list(self.params.values()), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps)
        self.coefficient = cfg.sparsity_coefficient
        if self.coefficient is None:
            self.coefficient = sae.default_sparsity_coefficient
        self.k_aux = cfg.k_aux if cfg.k_aux is not None else sae.cfg.d_in // 2
        self.generator = torch.Generator().manual_seed(cfg.seed)
        dev = sae.W_dec.device
        self.tokens_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.int64, device=dev)
        self.last: dict[str, float] = {}
        self.reduce = distributed.all_reduce if distributed.is_distributed() else None
        self.loss_fn = sae.training_loss
        self.small_ops_on_one_thread = sae.sparse_step  # see sae/threads.py
        if sae.sparse_step:
            keep_freed_memory()  # its gradients reuse their pages step after step (interp/allocator.py)
        if self.reduce is not None:
            self.loss_fn = distributed.data_parallel(_TrainingLoss(sae), gradients="sum", sync_buffers=False)

    # ---- start ---------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, sample: torch.Tensor) -> None:
        """Random weights, then the input scale and b_dec from raw activations sample [N, d_in].
        Across ranks every rank passes the same sample, and rank 0's result is copied to all."""
        sample = self._as_input(sample)
        self.sae.init_weights(self.generator, self.cfg)
        scale = input_scale(sample) if self.cfg.normalize_activations else 1.0
        self.sae.cfg.activation_scale = scale
        self.sae.b_dec.copy_(initial_b_dec(sample * scale, self.cfg.b_dec_init))
        if self.reduce is not None:  # equal inputs, but the ranks' devices need not round alike
            for t in self.sae.state_dict().values():
                distributed.broadcast(t)
            scale = torch.tensor([scale], dtype=torch.float64, device=self.sae.W_dec.device)
            self.sae.cfg.activation_scale = float(distributed.broadcast(scale))

    # ---- one step --------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a raw batch x [B, d_in]; returns the batch's metrics."""
        with small_ops() if self.small_ops_on_one_thread else nullcontext():
            return self._step(x)

    def _step(self, x: torch.Tensor) -> dict[str, float]:
        sae, cfg, step = self.sae, self.cfg, self.step_count
        x = self._as_input(x)
        if sae.cfg.activation_scale != 1.0:
            x = x * sae.cfg.activation_scale
        n, var_sum = spread(x, self.reduce)  # n: the whole batch's rows, all ranks together
        dead = self.tokens_since_fired >= cfg.dead_tokens
        measure = (step + 1) % cfg.log_every == 0 or step + 1 >= cfg.steps or not self.last
        step_ctx = StepContext(
            sparsity_coefficient=sparsity_at(step, cfg, self.coefficient),
            var_sum=var_sum,
            dead=dead if bool(dead.any()) else None,
            k_aux=self.k_aux,
            cfg=cfg,
            measure=measure,
            density=self.last["l0"] / sae.cfg.d_sae if "l0" in self.last else None,
            n_total=n,
            reduce=self.reduce,
        )
        out = self.loss_fn(x, step_ctx)
        if self.reduce is None:
            loss = float(out.loss.detach())
        else:
            loss, out = self._summed_over_ranks(out)
        check_finite(loss, "the loss", step, self.name)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if sae.unit_norm_decoder:
            _remove_parallel_grad(sae.W_dec)
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = _clip_gradients(list(self.params.values()), max_norm)
        check_finite(grad_norm, "a gradient", step, self.name)
        lr = lr_at(step, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with wide():  # one elementwise kernel over every weight and moment: its result is the same at any thread count
            _adam_step(self.opt)
        if sae.unit_norm_decoder:
            _unit_rows(sae.W_dec)
        with torch.no_grad():
            self.tokens_since_fired += n
            self.tokens_since_fired.masked_fill_(out.fired, 0)
        self.step_count += 1
        self.tokens += n
        self.last = {
            "loss": loss,
            "l0": float(out.active) / n if out.active is not None else self.last.get("l0", 0.0),
            "explained_variance": 1.0 - float(out.sse) / max(float(step_ctx.var_sum), 1e-12),
            "dead_fraction": float(dead.float().mean()),
            "lr": lr,
            **{k: float(v) for k, v in out.terms.items()},
        }
        return self.last

    def _summed_over_ranks(self, out: StepOutput) -> tuple[float, StepOutput]:
        """The whole batch's loss value, and `out` with its sums over all ranks (the loss tensor
        stays this rank's, for its backward): one all-reduce in float64 (counts stay exact)."""
        dev = out.sse.device
        scalars = [out.loss.detach(), out.sse, out.active if out.active is not None else torch.zeros(()), *out.terms.values()]
        packed = torch.cat([torch.stack([torch.as_tensor(v).to(dev, torch.float64).reshape(()) for v in scalars]),
                            out.fired.to(torch.float64)])
        distributed.all_reduce(packed)
        loss, sse, active, *terms = packed[: len(scalars)]
        fired = packed[len(scalars):] > 0
        summed = StepOutput(out.loss, sse, fired, active if out.active is not None else None, dict(zip(out.terms, terms)))
        return float(loss), summed

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.sae.cfg.d_in:
            raise SAEError(
                f"{self.name}: training batches must be [batch, d_in={self.sae.cfg.d_in}], got {tuple(x.shape)}."
            )
        return x.to(device=self.sae.W_dec.device, dtype=self.sae.W_dec.dtype)

    # ---- checkpoints -----------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resumed run needs, as tensors (for safetensors) and JSON."""
        t: dict[str, torch.Tensor] = {f"sae.{k}": v for k, v in self.sae.state_dict().items()}
        t |= optimizer_tensors(self.opt, {id(p): k for k, p in self.params.items()}, "adam")
        t["rng.torch"] = torch.get_rng_state()
        t["rng.trainer"] = self.generator.get_state()
        t["dead.tokens_since_fired"] = self.tokens_since_fired
        meta = {
            "name": self.name,
            "tokens": self.tokens,
            "sae_cfg": self.sae.cfg.to_dict(),
            "train_cfg": self.cfg.to_dict(),
            "identity": self.identity,
            "last": self.last,
        }
        return t, meta

    @torch.no_grad()
    def load_state(self, t: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        saved = SAEConfig.from_dict(meta["sae_cfg"])
        mine = self.sae.cfg
        if (saved.architecture, saved.d_in, saved.d_sae, saved.k) != (mine.architecture, mine.d_in, mine.d_sae, mine.k):
            raise SAEError(
                f"{self.name}: the checkpoint holds a {saved.architecture} SAE {saved.d_in}->{saved.d_sae} (k={saved.k}), "
                f"not the {mine.architecture} {mine.d_in}->{mine.d_sae} (k={mine.k}) asked for; "
                "use another output folder or resume with the same settings."
            )
        theirs = {"sae": {k: v for k, v in meta["sae_cfg"].items() if k not in _NOT_RESULT_SAE},
                  "train": {k: v for k, v in meta["train_cfg"].items() if k not in _NOT_RESULT_TRAIN},
                  **{f"data.{k}": v for k, v in (meta.get("identity") or {}).items()}}
        ours = {"sae": {k: v for k, v in mine.to_dict().items() if k not in _NOT_RESULT_SAE},
                "train": {k: v for k, v in self.cfg.to_dict().items() if k not in _NOT_RESULT_TRAIN},
                **{f"data.{k}": v for k, v in self.identity.items()}}
        for what in sorted(set(theirs) | set(ours)):
            a, b = theirs.get(what), ours.get(what)
            if isinstance(a, dict) and isinstance(b, dict):
                key = next((k for k in sorted(set(a) | set(b)) if _json(a.get(k)) != _json(b.get(k))), None)
                what, a, b = (f"{what}.{key}", a.get(key), b.get(key)) if key else (what, None, None)
            if _json(a) != _json(b):
                raise SAEError(f"{self.name}: the checkpoint in this folder is of another run ({what} was {a!r}, is now {b!r}); "
                               "choose another --out, rerun with the settings it had, or pass --overwrite to start afresh.")
        mine.activation_scale = saved.activation_scale
        for key, val in self.sae.state_dict(keep_vars=True).items():
            val.copy_(t[f"sae.{key}"])
        load_optimizer_tensors(self.opt, t, self.params, "adam")
        torch.set_rng_state(t["rng.torch"])
        self.generator.set_state(t["rng.trainer"])
        self.tokens_since_fired.copy_(t["dead.tokens_since_fired"])
        self.step_count = int(meta["step"])
        self.tokens = int(meta["tokens"])
        self.last = dict(meta.get("last", {}))


# settings free to differ on resume: they do not change the weights, or (steps) a caller extends a
# run on purpose with a length-free schedule (compare-layers' EV-target rounds); a caller for whom
# the length is part of the run puts it in `identity` (train-sae's token count)
_NOT_RESULT_SAE = {"device", "dtype", "activation_scale", "extra"}
_NOT_RESULT_TRAIN = {"checkpoint_every", "keep_checkpoints", "log_every", "steps"}


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


class _TrainingLoss(torch.nn.Module):
    """sae.training_loss as a module's forward: DistributedDataParallel arms its gradient hooks
    in forward, so the step must pass through one."""

    def __init__(self, sae: SAE):
        super().__init__()
        self.sae = sae

    def forward(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        return self.sae.training_loss(x, step_ctx)


@torch.no_grad()
def _clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_, bit for bit, but without multiplying every gradient by
    1.0 when the norm is within max_norm (two passes over the weight gradients a step)."""
    total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if bool(max_norm / (total + 1e-6) < 1.0):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return float(total)


def _rows_kernel(W: torch.Tensor, *others: torch.Tensor):
    """The native module if its row kernels suit W (and the tensors beside it), else None."""
    if W.device.type != "cpu" or W.dtype not in (torch.float32, torch.float64) or not W.is_contiguous():
        return None
    if any(t.dtype != W.dtype or not t.is_contiguous() for t in others):
        return None
    return native.kernels()


@torch.no_grad()
def _remove_parallel_grad(W_dec: torch.nn.Parameter) -> None:
    """Keep only the part of each row's gradient tangent to the unit sphere (Gao et al.)."""
    if W_dec.grad is not None:
        g = W_dec.grad
        fast = _rows_kernel(W_dec, g)
        if fast is not None:  # one pass per row, in cache
            with wide():
                fast.project_rows(g, W_dec.detach(), 0.0)
            return
        along = torch.bmm(g.unsqueeze(1), W_dec.unsqueeze(2)).view(-1, 1)  # row dots, no [d_sae, d_in] temporary
        g.addcmul_(along, W_dec, value=-1)


@torch.no_grad()
def _unit_rows(W_dec: torch.nn.Parameter) -> None:
    """Each decoder row divided by its norm (at least 1e-12)."""
    fast = _rows_kernel(W_dec)
    if fast is not None:
        with wide():
            fast.project_rows(torch.empty(0, dtype=W_dec.dtype), W_dec.detach(), 1e-12)
        return
    W_dec.div_(W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))


@torch.no_grad()
def _adam_step(opt: torch.optim.Adam) -> None:
    """opt.step(), but a parameter stored transposed (W_enc: the transpose of a contiguous
    tensor) reaches the fused kernel as that contiguous tensor, with its gradient and moments
    viewed alike: the same elementwise update, where the fused kernel would otherwise copy
    each of them to a contiguous layout and back."""
    group = opt.param_groups[0]
    params = [p for p in group["params"] if p.grad is not None]
    if (len(opt.param_groups) != 1 or not group.get("fused") or group["amsgrad"] or group["weight_decay"]
            or group["maximize"] or any(not opt.state.get(p) for p in params)):
        opt.step()  # anything else, and the first step (which creates the moments)
        return

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.t() if t.dim() == 2 and not t.is_contiguous() and t.t().is_contiguous() else t

    states = [opt.state[p] for p in params]
    beta1, beta2 = group["betas"]
    adam_update(
        [flat(p) for p in params], [flat(p.grad) for p in params],
        [flat(st["exp_avg"]) for st in states], [flat(st["exp_avg_sq"]) for st in states], [],
        [st["step"] for st in states], fused=True, amsgrad=False, beta1=beta1, beta2=beta2,
        lr=group["lr"], weight_decay=0.0, eps=group["eps"], maximize=False,
    )
