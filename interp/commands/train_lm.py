"""interp train-lm: train a GPT-2 or CRATE language model from scratch (nanoGPT's recipe)."""

from __future__ import annotations

import time

import torch

from interp import distributed
from interp.lm.config import LMConfig, TrainLMConfig
from interp.lm.train import train_lm
from interp.runlog import write_run_json


def run(args) -> int:
    with distributed.session(args.device) as device:
        return _train(args, device)


def _train(args, device) -> int:
    started = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LMConfig(arch=args.arch, n_layers=args.layers, d_model=args.d_model, n_heads=args.heads,
                   n_ctx=args.context_size, seed=args.seed)
    tcfg = TrainLMConfig(tokens=args.tokens, batch_size=args.batch_size, lr=args.lr, min_lr_ratio=args.min_lr_ratio,
                         warmup_steps=args.warmup, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                         eval_every=args.eval_every, eval_tokens=args.eval_tokens,
                         checkpoint_every=args.checkpoint_every, heldout_fraction=args.heldout_fraction, seed=args.seed)
    summary = train_lm(cfg, tcfg, args.text, args.vocab, args.out, device=device, resume=not args.restart)
    if distributed.is_main():
        write_run_json(args.out, vars(args) | {"func": None}, started, seed=args.seed,
                       seconds_training=summary.get("seconds"), tokens_per_second=summary.get("tokens_per_second"),
                       final_heldout_loss=summary.get("final_heldout_loss"), world_size=distributed.world_size())
    return 0
