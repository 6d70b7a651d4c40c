"""train_lm: tokenizer, token windows, model, the training loop with held-out evaluations,
checkpoints and resume, then the model folder that interp.load_model reads.

Layout of `out`:
    checkpoints/step_<n>.{safetensors,json}   the last two checkpoints (resume from the newest)
    interp_lm.json, model.safetensors, tokenizer files   the finished model (interp/lm/folder.py)
    history.json                                          the held-out loss curve

Under torchrun every rank runs train_lm on its rows of each global batch (interp/lm/trainer.py);
rank 0 alone evaluates, writes `out`, logs and shows the progress bar. It alone reads a checkpoint
on resume and sends it to the others, so their machines need not see its disk.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from interp import distributed
from interp.checkpoints import (
    checkpoint_steps,
    clear_checkpoints,
    read_checkpoint,
    read_checkpoint_everywhere,
    write_checkpoint,
)
from interp.device import pick_device
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.lm.bpe import lm_tokenizer
from interp.lm.build import build_model, count_parameters
from interp.lm.config import LMConfig, TrainLMConfig
from interp.lm.folder import save_lm_folder
from interp.lm.trainer import LMTrainer
from interp.tokens import token_windows
from interp.training import TrainingDiverged, resume_step


def train_lm(
    cfg: LMConfig,
    tcfg: TrainLMConfig,
    text: str,
    vocab: str,
    out: str | Path,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,  # stop (with a checkpoint) after this step, as if killed: for tests
) -> dict:
    """Train a `cfg` model on `text` with tokenizer `vocab` (gpt2 or bpe-N) into `out`; returns the
    training summary that the model folder's marker keeps. cfg.d_vocab is set from the tokenizer.
    Under torchrun, call it on every rank (inside distributed.session) with the same arguments."""
    out = Path(out)
    dev = pick_device(device)
    main, world = distributed.is_main(), distributed.world_size()
    if tcfg.batch_size < world:
        raise InterpError(f"a batch of {tcfg.batch_size} windows cannot be split over {world} ranks; use a --batch-size of at least {world}.")
    if not main:
        progress, log = False, lambda s: None
    with distributed.main_first():  # rank 0 trains the BPE and fills the token cache; the others then read them
        tokenizer = lm_tokenizer(vocab, text, tcfg.heldout_fraction)
        n_ctx = cfg.n_ctx
        train = token_windows(text, tokenizer, context_size=n_ctx, split="train", heldout_fraction=tcfg.heldout_fraction)
        heldout = token_windows(text, tokenizer, context_size=n_ctx, split="heldout", max_tokens=tcfg.eval_tokens,
                                heldout_fraction=tcfg.heldout_fraction)[: max(1, tcfg.eval_tokens // n_ctx)]
    cfg = replace(cfg, d_vocab=len(tokenizer))
    model = build_model(cfg, tokenizer, name=out.resolve().name).to(dev, print_details=False)
    trainer = LMTrainer(model, tcfg, train, heldout)
    steps = trainer.steps
    ident = {"config": cfg.to_dict(), "train_config": tcfg.to_dict(), "text": text, "vocab": vocab}

    history: list[dict] = []
    seconds = 0.0  # training time, evaluations excluded
    run_loss = [0.0, 0]  # train loss sum and count since the last evaluation
    start = _resume_step_everywhere(out, ident) if resume else None
    if start is not None:
        tensors, meta = read_checkpoint_everywhere(out, start)
        trainer.load_state(tensors, start)
        history, seconds, run_loss = meta["history"], meta["seconds"], meta["run_loss"]
        log(f"resuming {out} from step {start} of {steps}")
    else:
        start = 0
        if main:
            clear_checkpoints(out)  # a fresh run: an older run's checkpoints must not outrank ours
    params = count_parameters(model)
    log(f"training {cfg.arch} {cfg.n_layers}L d_model={cfg.d_model} heads={cfg.n_heads} n_ctx={n_ctx} vocab={cfg.d_vocab} "
        f"({params['total']:,} parameters, {params['blocks']:,} in blocks): {steps} steps of {tcfg.batch_size}x{n_ctx} tokens, "
        f"{len(train) * n_ctx:,} train tokens ({steps * tcfg.batch_size / len(train):.2f} epochs), "
        f"held-out loss on {heldout.numel():,} tokens" + (f", on {world} ranks" if world > 1 else ""))

    def evaluate(step: int) -> None:
        """On rank 0 only (its unwrapped model, no gradients); the others wait at the barrier."""
        if main and not (history and history[-1]["step"] == step):
            _evaluate(step)
        distributed.barrier()

    def _evaluate(step: int) -> None:
        entry = {"step": step, "tokens": step * tcfg.batch_size * n_ctx, "heldout_loss": round(trainer.evaluate(), 5),
                 "train_loss": round(run_loss[0] / run_loss[1], 5) if run_loss[1] else None,
                 "seconds": round(seconds, 2), "tokens_per_second": round(step * tcfg.batch_size * n_ctx / seconds) if seconds else None}
        history.append(entry)
        run_loss[:] = [0.0, 0]

    def checkpoint(step: int) -> None:
        if not main:
            return
        write_checkpoint(out, step, trainer.state(), {**ident, "history": history, "seconds": seconds, "run_loss": run_loss})
        write_json_atomic(out / "history.json", {"history": history})

    end = steps if stop_after is None else min(steps, stop_after)
    bar = tqdm(total=steps, initial=start, unit="step", disable=not progress, dynamic_ncols=True, desc=f"{cfg.arch}-{cfg.n_layers}l")
    ema, session_seconds = None, 0.0
    step = start
    try:
        while step < end:
            if step % tcfg.eval_every == 0:
                evaluate(step)
            t0 = time.perf_counter()
            loss = trainer.step(trainer.batch_at(step))
            dt = time.perf_counter() - t0
            seconds += dt
            session_seconds += dt
            step += 1
            run_loss[0] += loss
            run_loss[1] += 1
            ema = loss if ema is None else 0.95 * ema + 0.05 * loss
            if step % tcfg.checkpoint_every == 0 or step == end:
                if step == steps:
                    evaluate(step)
                checkpoint(step)
            bar.update(1)
            held = history[-1]["heldout_loss"] if history else math.nan
            speed = (step - start) * tcfg.batch_size * n_ctx / max(session_seconds, 1e-9)
            bar.set_postfix_str(f"loss={ema:.3f} held-out={held:.3f} tok/s={speed:,.0f}", refresh=False)
    except TrainingDiverged as e:
        done = checkpoint_steps(out)
        where = f"step {done[-1]} in {out / 'checkpoints'}" if done else "none was written yet"
        raise InterpError(f"training diverged: {e}; stopped, last good checkpoint: {where}; lower --lr or raise --warmup.") from None
    finally:
        bar.close()
    if step < steps:  # stopped early on purpose
        distributed.barrier()
        return {"step": step, "steps": steps, "history": history}
    evaluate(steps)
    summary = {
        "steps": steps, "tokens": steps * tcfg.batch_size * n_ctx, "text": text, "vocab": vocab,
        "train_config": tcfg.to_dict(), "parameters": params, "seconds": round(seconds, 1),
        "tokens_per_second": round(steps * tcfg.batch_size * n_ctx / max(seconds, 1e-9)),
        "final_heldout_loss": history[-1]["heldout_loss"] if main else None, "heldout_tokens": int(heldout.numel()),
        "train_tokens_available": int(train.numel()), "history": history,
    }
    if not main:  # rank 0 alone evaluates, so the others' summary has no held-out curve
        distributed.barrier()
        return summary | {"history": []}
    write_json_atomic(out / "history.json", {"history": history})
    save_lm_folder(model, cfg, out, summary)
    distributed.barrier()  # the folder is complete before any rank returns
    log(f"held-out loss {history[0]['heldout_loss']:.3f} -> {history[-1]['heldout_loss']:.3f} after {summary['tokens']:,} tokens "
        f"({summary['tokens_per_second']:,} tokens/s); model saved to {out}")
    return summary


def _resume_step_everywhere(out: Path, ident: dict) -> int | None:
    """The step to resume from, decided on rank 0 (which alone sees `out`) and sent to every rank."""
    refused = None
    try:
        start = _resume_step(out, ident) if distributed.is_main() else None
    except InterpError as e:
        refused, start = e, None
    code = distributed.broadcast_int(-2 if refused else -1 if start is None else start)
    if refused:
        raise refused
    if code == -2:
        raise InterpError(f"rank 0 refused to resume from {out}; its message says why.")
    return None if code == -1 else code



def _resume_step(out: Path, ident: dict) -> int | None:
    step = resume_step([out])
    if step is None:
        return None
    _, meta = read_checkpoint(out, step)
    saved = {k: meta.get(k) for k in ident}
    if saved != ident:
        diff = sorted(k for k in ident if saved[k] != ident[k])
        raise InterpError(f"{out} holds checkpoints of a run with other settings ({', '.join(diff)} differ); "
                          "give another --out, the same settings, or --restart to discard them.")
    return step
