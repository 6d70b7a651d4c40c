"""The training loop: one activation stream drives one or several SAEs, with checkpoints,
resume, and a progress bar.

The caller supplies the stream as a function `batches(start_step)` that yields batch number
start_step first, then the following ones, the same ones on every call: that is what lets a
killed run resume and end with the same weights as an uninterrupted one.

Under torchrun (interp/distributed.py) every rank runs this loop, and `batches` yields this
rank's rows of each batch (rank r of N: a disjoint part of the same global batch). Steps count
global batches, so a checkpoint resumes on any number of ranks. Rank 0 alone writes
checkpoints, the SAE folders and the progress bar; it alone reads a checkpoint, and sends it to
the others, so other machines need not see its disk."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from interp import distributed
from interp.checkpoints import (
    clear_checkpoints,
    read_checkpoint_everywhere,
    write_checkpoint,
)
from interp.files import write_json_atomic
from interp.training import resume_step
from sae.base import SAE
from sae.config import TrainConfig
from sae.errors import SAEError, TrainingDiverged
from sae.io import load_sae, save_sae
from sae.trainer import Trainer

BatchSource = Callable[[int], Iterable[torch.Tensor]]  # start_step -> batches [B, d_in]
DictBatchSource = Callable[[int], Iterable[Mapping[str, torch.Tensor]]]  # -> {name: [B, d_in]}


def train_sae(
    sae: SAE, batches: BatchSource, cfg: TrainConfig, out_dir: str | Path,
    *, resume: bool = True, progress: bool = True,
) -> SAE:
    """Train one SAE, checkpointing into out_dir and saving the SAE folder there; returns the
    SAE as saved (reads raw activations; a batchtopk SAE comes back as its jumprelu form)."""
    name = sae.cfg.hook_name or "sae"
    dict_batches = lambda start: ({name: b} for b in batches(start))
    return train_saes({name: sae}, dict_batches, cfg, {name: out_dir}, resume=resume, progress=progress)[name]


def train_saes(
    saes: Mapping[str, SAE], batches: DictBatchSource, cfg: TrainConfig | Mapping[str, TrainConfig],
    out_dirs: Mapping[str, str | Path], *, resume: bool = True, progress: bool = True,
    identity: Mapping[str, Any] | None = None, overwrite: bool = False,
) -> dict[str, SAE]:
    """Train several SAEs on one stream of {name: [B, d_in]} batches (e.g. one per hook).

    A folder holds one run. `identity` names what the result depends on beyond the configs (data
    source fingerprint, hooks, batch size, ...): a checkpoint resumes only when its identity, SAE
    config and every training setting match, and a folder holding an SAE with no checkpoint of
    ours is not written over; both raise SAEError unless `overwrite` (or resume=False: start afresh).

    Returns the SAEs as saved; on ranks other than 0 of a distributed run, the trained modules
    themselves (rank 0's folders may be on another machine)."""
    cfgs = {n: cfg[n] if isinstance(cfg, Mapping) else cfg for n in saes}
    steps, every = _shared(cfgs, "steps"), _shared(cfgs, "checkpoint_every")
    dirs = {n: Path(out_dirs[n]) for n in saes}
    trainers = {n: Trainer(sae, cfgs[n], name=n) for n, sae in saes.items()}
    main = distributed.is_main()

    ident = dict(identity or {})
    for tr in trainers.values():
        tr.identity = ident
    start = resume_step(dirs.values(), error=SAEError) if resume and main and not overwrite else None
    if start is None and main and resume and not overwrite:  # resume=False asks for a fresh start
        _refuse_foreign(dirs)
    start = distributed.broadcast_int(-1 if start is None else start)
    if start >= 0:
        for n, tr in trainers.items():
            tr.load_state(*read_checkpoint_everywhere(dirs[n], start))
    else:
        start = 0
        for d in dirs.values() if main else ():  # a fresh run: checkpoints of an earlier one must not outrank ours
            clear_checkpoints(d)
        # the trainers draw from their own generators; seeding the global one too makes the
        # run's saved RNG state (and anything else that draws from it) reproducible
        torch.manual_seed(next(iter(cfgs.values())).seed)
        _initialize(trainers, batches, max(c.init_batches for c in cfgs.values()))
    last_saved = start

    log_every = min(c.log_every for c in cfgs.values())
    bar = tqdm(total=steps, initial=start, disable=not (progress and main), unit="step", dynamic_ncols=True)
    step = start
    try:
        for batch in batches(start) if start < steps else ():
            if step >= steps:
                break
            for n, tr in trainers.items():
                if n not in batch:
                    raise SAEError(f"the batch source gave no activations for {n!r} at step {step}.")
                tr.step(batch[n])
            step += 1
            if step % every == 0 or step == steps:
                if main:
                    _checkpoint(trainers, dirs, step)
                last_saved = step
            bar.update(1)
            if step % log_every == 0 or step == steps:
                bar.set_postfix_str(_postfix(trainers), refresh=False)
    except TrainingDiverged as e:
        where = f"step {last_saved} in {', '.join(map(str, dirs.values()))}" if last_saved else "none was written yet"
        raise TrainingDiverged(f"{e}; stopped, last good checkpoint: {where}. Lower the learning rate or check the activations.") from None
    finally:
        bar.close()
    if step < steps:
        warnings.warn(f"the batch source ran out after {step} of {steps} steps; saving what was trained.", stacklevel=2)
        if step != last_saved and main:
            _checkpoint(trainers, dirs, step)
    distributed.barrier()  # the folders are complete before any rank returns
    if not main:
        return {n: tr.sae for n, tr in trainers.items()}
    return {n: load_sae(dirs[n], device=tr.sae.W_dec.device) for n, tr in trainers.items()}


def _shared(cfgs: Mapping[str, TrainConfig], field: str) -> int:
    values = {getattr(c, field) for c in cfgs.values()}
    if len(values) != 1:
        raise SAEError(f"SAEs trained on one stream must share {field}; got {sorted(values)}.")
    return values.pop()


def _refuse_foreign(dirs: Mapping[str, Path]) -> None:
    """A fresh run must not replace an SAE that no checkpoint here says is ours to replace."""
    for d in dirs.values():
        if (d / "cfg.json").exists() or (d / "sae_weights.safetensors").exists():
            raise SAEError(f"{d} already holds an SAE that is not a checkpointed run of these settings; "
                           "choose another --out, or pass --overwrite to replace it.")


def _initialize(trainers: Mapping[str, Trainer], batches: DictBatchSource, n_batches: int) -> None:
    """The first batches set each SAE's input scale and b_dec. Across ranks, every rank gathers
    the whole batches (rows in rank order: the batches one process would read)."""
    samples: dict[str, list[torch.Tensor]] = {n: [] for n in trainers}
    for batch in itertools.islice(batches(0), n_batches):
        for n in trainers:
            if n not in batch:
                raise SAEError(f"the batch source gave no activations for {n!r}.")
            samples[n].append(distributed.all_gather_rows(batch[n]))
    if not samples or not all(samples.values()):
        raise SAEError("the batch source gave no batches; check the activation stream.")
    for n, tr in trainers.items():
        tr.initialize(torch.cat(samples[n]))


def _checkpoint(trainers: Mapping[str, Trainer], dirs: Mapping[str, Path], step: int) -> None:
    for n, tr in trainers.items():
        tensors, meta = tr.state()
        write_checkpoint(dirs[n], step, tensors, meta, keep=tr.cfg.keep_checkpoints)
        save_sae(tr.sae, dirs[n])
        write_json_atomic(dirs[n] / "train_state.json",
                          {"step": step, "tokens": tr.tokens, "last": tr.last, "train_cfg": tr.cfg.to_dict()})


def _postfix(trainers: Mapping[str, Trainer]) -> str:
    def one(m: dict[str, float]) -> str:
        return (f"loss={m.get('loss', 0):.4g} L0={m.get('l0', 0):.1f} "
                f"EV={m.get('explained_variance', 0):.3f} dead={m.get('dead_fraction', 0):.2f}")
    if len(trainers) == 1:
        return one(next(iter(trainers.values())).last)
    return " | ".join(f"{n}: {one(tr.last)}" for n, tr in trainers.items())
