"""A shuffle buffer that feeds training straight from the model, with no disk cache.

Windows are visited in a seeded random order, a block of them is run through the model (one
forward pass for all hooks, stopped at the deepest), and the block's tokens are shuffled before
they leave as batches. A batch thus mixes tokens from many documents, and the stream is a pure
function of (seed, step): a resumed run restarts at its block and sees the same batches.

Under torchrun, each rank runs the model on its own part of every block's windows; the ranks
then gather the block, and each yields its own rows of every batch: together, the batches of
one process, whatever the number of ranks."""

from __future__ import annotations

from typing import Iterator

import torch

from interp import distributed
from interp.errors import InterpError
from interp.sites import hook_width, stop_layer
from interp.training import epoch_seed

BLOCK_BATCHES = 8  # batches per shuffle block: the tokens of a block are shuffled together


def block_windows(batch_size: int, context_size: int, skip_bos: bool = False, block_batches: int = BLOCK_BATCHES) -> int:
    """How many windows one shuffle block runs through the model: the least text the stream needs,
    whatever the number of training tokens (a block's leftover tokens are dropped)."""
    return -(-block_batches * batch_size // (context_size - (1 if skip_bos else 0)))


def stream_activations(
    model,
    windows: torch.Tensor,  # [n_windows, context_size]
    hooks: list[str],
    batch_size: int = 4096,
    block_batches: int = BLOCK_BATCHES,
    forward_batch: int = 8,
    seed: int = 0,
    start_step: int = 0,
    skip_bos: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield {hook: [batch_size, d] float32} forever (epoch after epoch over `windows`).

    `skip_bos` leaves out each window's first position (BOS), as ActivationStore.iter_batches does.
    Under torchrun: this rank's rows of each batch (see the module's docstring)."""
    n, context_size = windows.shape
    first = 1 if skip_bos else 0
    per_window = context_size - first
    n_block = block_windows(batch_size, context_size, skip_bos, block_batches)
    if n < n_block:
        raise InterpError(f"{n} windows of text are too few for a shuffle block of {n_block} "
                          f"({block_batches} batches of {batch_size} tokens); give more text or a smaller --batch-size.")
    blocks_per_epoch = n // n_block
    widths = {h: hook_width(model, h) for h in hooks}
    stop = stop_layer(hooks)
    device = next(model.parameters()).device
    lo_w, hi_w = distributed.shard_range(n_block)  # the windows of a block this rank runs
    lo_b, hi_b = distributed.shard_range(batch_size)  # the rows of a batch it yields

    block, skip = divmod(start_step, block_batches)
    while True:
        epoch, b = divmod(block, blocks_per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        ids = order[b * n_block : (b + 1) * n_block][lo_w:hi_w]
        acts = {h: torch.empty(len(ids) * context_size, d) for h, d in widths.items()}
        for f0 in range(0, len(ids), forward_batch):
            f1 = min(f0 + forward_batch, len(ids))
            rows = slice(f0 * context_size, f1 * context_size)

            def keep(act, hook, rows=rows):
                acts[hook.name][rows].copy_(act.reshape((f1 - f0) * context_size, -1))

            with torch.inference_mode(), model.hooks(fwd_hooks=[(h, keep) for h in hooks]):
                model(windows[ids[f0:f1]].to(device), stop_at_layer=stop)
        acts = {h: distributed.all_gather_rows(a) for h, a in acts.items()}  # the whole block, on every rank
        if first:
            keep_rows = (torch.arange(n_block * context_size) % context_size) != 0
            acts = {h: a[keep_rows] for h, a in acts.items()}
        perm = torch.randperm(n_block * per_window, generator=torch.Generator().manual_seed(seed * 7_919 + block))
        for k in range(skip, block_batches):
            idx = perm[k * batch_size + lo_b : k * batch_size + hi_b]
            yield {h: a[idx] for h, a in acts.items()}
        skip = 0
        block += 1
