"""One language model's training state and its step (nanoGPT's recipe): AdamW with weight decay
on matrices and embeddings only, linear warm-up then cosine decay, gradient clipping.

The data order is a pure function of (seed, step): batch s holds the windows at positions
s*B .. s*B+B-1 of a seeded shuffle per epoch. With the AdamW state in the checkpoint, a resumed
run therefore takes exactly the steps an uninterrupted one would.

Under torchrun (interp/distributed.py) every rank holds the trainer; `step(batch)` takes the
global batch and computes only this rank's rows, DDP adds the ranks' gradients, and clipping and
AdamW then run on identical gradients everywhere, so the weights stay identical. Steps count
global batches, so a checkpoint resumes on any number of ranks."""

from __future__ import annotations

import math

import torch

from interp import distributed
from interp.lm.config import TrainLMConfig
from interp.training import (
    check_finite,
    epoch_seed,
    fused_adam,
    indexed_params,
    load_optimizer_tensors,
    optimizer_tensors,
    param_indices,
)


class NextTokenLoss(torch.nn.Module):
    """The model's mean next-token loss as one module, so that a DDP wrapper can wrap it whole.

    Equal to TransformerLens's `return_type="loss"`, but the last position is dropped before the
    unembedding instead of slicing the [batch, pos, d_vocab] logits: the slice's backward and
    TL's separate log_softmax were a third of a step's time at a small d_model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # tokens [batch, n_ctx] -> scalar
        m = self.model
        resid = m(tokens, stop_at_layer=m.cfg.n_layers)  # [batch, n_ctx, d_model], after the last block
        logits = m.unembed(m.ln_final(resid[:, :-1]))  # [batch, n_ctx - 1, d_vocab]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


class LMTrainer:
    def __init__(self, model, cfg: TrainLMConfig, train_windows: torch.Tensor, heldout_windows: torch.Tensor):
        self.model, self.cfg = model, cfg
        # each rank's loss is its share of the global batch's mean, so summed gradients are the
        # global gradient even when B does not split evenly; the buffers (causal masks) are constants
        self.loss = distributed.data_parallel(NextTokenLoss(model), gradients="sum", sync_buffers=False)
        self.rows = slice(*distributed.shard_range(cfg.batch_size))  # this rank's rows of every batch
        self.train_windows = train_windows  # [n, n_ctx] int64
        self.heldout_windows = heldout_windows  # [m, n_ctx]: every evaluation uses these same windows
        self.steps = cfg.steps(train_windows.shape[1])
        self.device = next(model.parameters()).device
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        decay = [p for p in self.params.values() if p.dim() >= 2]
        no_decay = [p for p in self.params.values() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        kw = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt = fused_adam(torch.optim.AdamW, groups, **kw)
        self.step_count = 0
        self._perms: dict[int, torch.Tensor] = {}

    # ---- schedule and data -----------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, self.steps - cfg.warmup_steps))
        low = cfg.lr * cfg.min_lr_ratio
        return low + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - low)

    def batch_at(self, step: int) -> torch.Tensor:  # [batch_size, n_ctx]
        n, b = len(self.train_windows), self.cfg.batch_size
        rows = []
        for i in range(step * b, step * b + b):
            epoch, pos = divmod(i, n)
            rows.append(int(self._perm(epoch)[pos]))
        return self.train_windows[rows]

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, epoch))
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}  # a batch spans two epochs at most
            self._perms[epoch] = torch.randperm(len(self.train_windows), generator=g)
        return self._perms[epoch]

    # ---- one step --------------------------------------------------------------------------
    def step(self, batch: torch.Tensor) -> float:
        """One optimisation step on the global batch of token windows [B, n_ctx] (this rank computes
        its rows only); returns the whole batch's mean loss, the same on every rank."""
        model = self.model
        model.train()
        mine = batch[self.rows]  # [B / world_size, n_ctx]
        loss = self.loss(mine.to(self.device))
        if len(mine) != len(batch):
            loss = loss * (len(mine) / len(batch))
        # every rank sees the global loss, so all of them stop together when it is not finite
        value = float(distributed.all_reduce(loss.detach().clone()))
        check_finite(value, "the loss", self.step_count)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.grad_clip))
        check_finite(norm, "the gradient norm", self.step_count)
        lr = self.lr_at(self.step_count)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        self.step_count += 1
        return value

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean next-token loss over the held-out windows."""
        self.model.eval()
        total, count = 0.0, 0
        for i in range(0, len(self.heldout_windows), self.cfg.batch_size):
            batch = self.heldout_windows[i : i + self.cfg.batch_size].to(self.device)
            per_token = self.model(batch, return_type="loss", loss_per_token=True)  # [b, n_ctx - 1]
            total += float(per_token.sum())
            count += per_token.numel()
        return total / count

    # ---- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        t = {f"model.{k}": v for k, v in self.params.items()}
        t |= optimizer_tensors(self.opt, param_indices(self.opt), "opt")
        t["rng.torch"] = torch.get_rng_state()
        return t

    @torch.no_grad()
    def load_state(self, t: dict[str, torch.Tensor], step: int) -> None:
        for k, p in self.params.items():
            p.copy_(t[f"model.{k}"])
        load_optimizer_tensors(self.opt, t, indexed_params(self.opt), "opt")
        torch.set_rng_state(t["rng.torch"])
        self.step_count = step
