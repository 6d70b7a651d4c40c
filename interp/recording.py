"""Record activations at many hook points from ONE forward pass, stopped at the deepest layer asked
for, into the on-disk cache of interp/store.py.

Hooks append each batch's activations straight to the shard's files (interp/shard_writer.py), no
shard-sized buffer: with direct I/O, through a few staging buffers that the shard's writer thread
sends to the disk while the model runs; without it, into the page cache, which a background thread
fsyncs between batches. A finished shard is put in place while the model runs on the next one.
bench/record.py times this against a bare forward (bench/results/record.md).

Under torchrun the windows still fall into the same shards, and shard i is run and written by
rank i % N; rank 0 names them all in the manifest at the end. The folder is then the one a
single process writes, read by the same readers; a killed run resumes on any number of ranks."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from interp import distributed
from interp.errors import InterpError
from interp.models.processing import saelens_metadata
from interp.shard_writer import ShardWriter
from interp.sites import hook_width, stop_layer
from interp.store import ActivationStore, CacheWriter, shard_name

SHARD_BYTES = 256 << 20  # target size of one shard across all its hooks


def windows_sha256(windows: torch.Tensor) -> str:
    return hashlib.sha256(windows.to(torch.int32).contiguous().numpy().tobytes()).hexdigest()


def record(
    model,
    windows: torch.Tensor,  # [n_windows, context_size] token ids
    hooks: list[str],
    out: str | Path,
    batch_size: int = 8,
    dtype: str = "float32",
    header: dict | None = None,
    progress: bool = True,
) -> ActivationStore:
    """Run `windows` through `model` and store every hook's activations in `out`.

    A folder that already holds part of the same recording is resumed: whole shards are kept.
    Under torchrun every rank calls this with the same arguments (see the module's docstring)."""
    if windows.ndim != 2 or len(windows) == 0:
        raise InterpError("there are no token windows to record: the text source gave no tokens.")
    widths = {h: hook_width(model, h) for h in hooks}
    context_size = windows.shape[1]
    np_dtype = np.dtype(dtype)
    head = {
        "model": model.cfg.model_name,
        **({"model_path": model.model_path} if getattr(model, "model_path", None) else {}),  # a local folder
        "hooks": {h: {"d": d} for h, d in widths.items()},
        "dtype": np_dtype.name,
        "context_size": int(context_size),
        "n_windows_planned": len(windows),
        "tokens_sha256": windows_sha256(windows),
        **saelens_metadata(model),  # prepend_bos and the weights' processing, which SAELens's cfg.json records
        **(header or {}),
    }
    main, rank, world = distributed.is_main(), distributed.rank(), distributed.world_size()
    if main:  # creates or checks the manifest and tidies the folder before the others look
        writer = CacheWriter(out, head)
    distributed.barrier()
    if not main:
        writer = CacheWriter(out, head, owner=False)
    done = writer.n_windows
    bytes_per_window = context_size * (4 + sum(widths.values()) * np_dtype.itemsize)
    shard_windows = max(batch_size, (SHARD_BYTES // bytes_per_window) // batch_size * batch_size)
    first = len(writer.manifest["shards"])
    plan = [(first + j, s0, min(s0 + shard_windows, len(windows))) for j, s0 in enumerate(range(done, len(windows), shard_windows))]
    waiting = writer.pending()  # whole shards of a killed run that the manifest does not name yet
    mine = [(i, s0, s1) for i, s0, s1 in plan
            if i % world == rank and _layout(waiting.get(shard_name(i))) != (s0, s1 - s0)]
    stop = stop_layer(hooks)
    device = next(model.parameters()).device
    torch_dtype = getattr(torch, np_dtype.name)

    skipped = done if world == 1 else 0  # one process counts the whole recording, a rank its own part
    todo = sum(s1 - s0 for _, s0, s1 in mine)
    bar = tqdm(total=(skipped + todo) * context_size, initial=skipped * context_size, unit="tok", unit_scale=True, desc="record",
               disable=not (progress and main))
    pool = ThreadPoolExecutor(max_workers=1)  # fsyncs, and puts a finished shard in place, while the model runs
    pending = None
    t0 = time.perf_counter()
    try:
        for index, s0, s1 in mine:
            shard, syncing = writer.open_shard(index, s0), None
            try:
                fwd_hooks = [(h, _append_to(shard, h, d, torch_dtype)) for h, d in widths.items()]
                with torch.inference_mode(), model.hooks(fwd_hooks=fwd_hooks):
                    for b0 in range(s0, s1, batch_size):
                        b1 = min(b0 + batch_size, s1)
                        model(windows[b0:b1].to(device), stop_at_layer=stop)
                        shard.append_tokens(windows[b0:b1].to(torch.int32).numpy())
                        bar.update((b1 - b0) * context_size)
                        if not shard.direct and (syncing is None or syncing.done()):  # the disk writes while the model runs
                            if syncing is not None:
                                syncing.result()  # a failed fsync surfaces here
                            syncing = pool.submit(shard.sync)
                if pending is not None:
                    pending.result()  # at most one shard in flight; errors surface here
                if syncing is not None:
                    syncing.result()
            except BaseException:
                if syncing is not None:
                    wait([syncing])
                shard.abort()
                raise
            pending = pool.submit(writer.close_shard, shard)
        if pending is not None:
            pending.result()
    finally:
        pool.shutdown(wait=True)
        bar.close()
    distributed.barrier()  # every rank's shards are in place
    if main:
        writer.adopt()
        if writer.n_windows != len(windows):
            raise InterpError(f"{out} holds {writer.n_windows} of {len(windows)} windows after recording: a shard is missing; rerun the same command.")
        writer.finish(seconds=round(time.perf_counter() - t0, 3))
    distributed.barrier()  # the manifest is final before any rank reads it
    return ActivationStore(out)


def _layout(info: dict | None) -> tuple[int, int] | None:
    return None if info is None else (info["first_window"], info["n_windows"])


def _append_to(shard: ShardWriter, hook_name: str, d: int, dtype: torch.dtype):
    def hook(act, hook):  # act [batch, pos, d] or [batch, pos, heads, d_head]: straight to the shard's file
        shard.append(hook_name, act.detach().reshape(-1, d).to(device="cpu", dtype=dtype).numpy())

    return hook
