"""Record activations at many hook points from ONE forward pass, stopped at the deepest layer asked
for, into the on-disk cache of interp/store.py.

Hooks copy straight into preallocated shard buffers; a background thread writes the finished shard
while the model runs on the next one, so the disk costs almost nothing next to the forward pass."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.sites import hook_width, stop_layer
from interp.store import ActivationCache, CacheWriter

SHARD_BYTES = 256 << 20  # target size of one shard across all its hooks


def windows_sha256(windows: torch.Tensor) -> str:
    return hashlib.sha256(windows.to(torch.int32).contiguous().numpy().tobytes()).hexdigest()


def record(
    model,
    windows: torch.Tensor,  # [n_windows, ctx] token ids
    hooks: list[str],
    out: str | Path,
    batch_size: int = 8,
    dtype: str = "float32",
    header: dict | None = None,
    progress: bool = True,
) -> ActivationCache:
    """Run `windows` through `model` and store every hook's activations in `out`.

    A folder that already holds part of the same recording is resumed after its last whole shard."""
    if windows.ndim != 2 or len(windows) == 0:
        raise InterpError("there are no token windows to record: the text source gave no tokens.")
    widths = {h: hook_width(model, h) for h in hooks}
    ctx = windows.shape[1]
    np_dtype = np.dtype(dtype)
    head = {
        "model": model.cfg.model_name,
        "hooks": {h: {"d": d} for h, d in widths.items()},
        "dtype": np_dtype.name,
        "context_size": int(ctx),
        "n_windows_planned": int(len(windows)),
        "tokens_sha256": windows_sha256(windows),
        **(header or {}),
    }
    writer = CacheWriter(out, head)
    done = writer.n_windows
    bytes_per_window = ctx * (4 + sum(widths.values()) * np_dtype.itemsize)
    shard_windows = max(batch_size, (SHARD_BYTES // bytes_per_window) // batch_size * batch_size)
    stop = stop_layer(hooks)
    device = next(model.parameters()).device

    bar = tqdm(total=len(windows) * ctx, initial=done * ctx, unit="tok", unit_scale=True, desc="record", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=1)
    pending = None
    t0 = time.perf_counter()
    try:
        for s0 in range(done, len(windows), shard_windows):
            s1 = min(s0 + shard_windows, len(windows))
            bufs = {h: torch.empty((s1 - s0) * ctx, d, dtype=getattr(torch, np_dtype.name)) for h, d in widths.items()}
            for b0 in range(s0, s1, batch_size):
                b1 = min(b0 + batch_size, s1)
                rows = slice((b0 - s0) * ctx, (b1 - s0) * ctx)
                fwd_hooks = [(h, _copy_into(bufs[h], rows)) for h in hooks]
                with torch.inference_mode(), model.hooks(fwd_hooks=fwd_hooks):
                    model(windows[b0:b1].to(device), stop_at_layer=stop)
                bar.update((b1 - b0) * ctx)
            if pending is not None:
                pending.result()  # at most one shard in flight: bounded memory, errors surface here
            tokens = windows[s0:s1].to(torch.int32).numpy()
            pending = pool.submit(writer.write_shard, tokens, {h: b.numpy() for h, b in bufs.items()})
        if pending is not None:
            pending.result()
    finally:
        pool.shutdown(wait=True)
        bar.close()
    writer.finish(seconds=round(time.perf_counter() - t0, 3))
    return ActivationCache(out)


def _copy_into(buf: torch.Tensor, rows: slice):
    def hook(act, hook):  # act [batch, pos, d] or [batch, pos, heads, d_head]
        buf[rows].copy_(act.reshape(-1, buf.shape[1]))
        return None

    return hook
