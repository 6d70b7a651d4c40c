"""Training checkpoints of a language model: <out>/checkpoints/step_<n>.safetensors (parameters,
AdamW moments, RNG state) and step_<n>.json (step, configs, history), each written to a temporary
name and renamed, the JSON last: a checkpoint whose JSON exists is complete, so a run killed at
any instant resumes from the last complete one. No pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.store import write_json_atomic

DIR = "checkpoints"


def _name(step: int) -> str:
    return f"step_{step:09d}"


def checkpoint_steps(out: Path) -> list[int]:
    """Steps of the complete checkpoints in `out`, oldest first."""
    d = Path(out) / DIR
    steps = []
    for p in d.glob("step_*.json") if d.is_dir() else ():
        try:
            step = int(p.stem.split("_")[1])
        except ValueError:
            continue
        if (d / f"{_name(step)}.safetensors").exists():
            steps.append(step)
    return sorted(steps)


def write_checkpoint(out: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 2) -> None:
    from safetensors.torch import save

    d = Path(out) / DIR
    d.mkdir(parents=True, exist_ok=True)
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    tmp = d / f".{_name(step)}.safetensors.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / f"{_name(step)}.safetensors")
    write_json_atomic(d / f"{_name(step)}.json", {"step": step, **meta})
    for old in checkpoint_steps(out)[:-keep]:
        (d / f"{_name(old)}.json").unlink(missing_ok=True)  # the JSON first: never a complete-looking half
        (d / f"{_name(old)}.safetensors").unlink(missing_ok=True)


def read_checkpoint(out: Path, step: int) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load

    d = Path(out) / DIR
    try:
        meta = json.loads((d / f"{_name(step)}.json").read_text())
        tensors = load((d / f"{_name(step)}.safetensors").read_bytes())
    except Exception as e:  # a file damaged outside our atomic writes
        raise InterpError(f"the checkpoint of step {step} in {d} is unreadable ({type(e).__name__}); delete it to resume from an older one.") from None
    return tensors, meta


def clear_checkpoints(out: Path) -> None:
    d = Path(out) / DIR
    for step in checkpoint_steps(out):
        (d / f"{_name(step)}.json").unlink(missing_ok=True)
        (d / f"{_name(step)}.safetensors").unlink(missing_ok=True)
