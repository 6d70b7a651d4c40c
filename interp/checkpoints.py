"""Training checkpoints, shared by the SAE and language-model trainers.

A checkpoint is two files in <out_dir>/checkpoints/: step_<n>.safetensors (parameters, optimizer
moments, RNG states, counters) and step_<n>.json (step, configs, scalars). Each is written
atomically, the JSON last: a checkpoint whose JSON exists is complete, so a run killed at any
instant resumes from the last complete one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from interp import distributed
from interp.errors import InterpError
from interp.files import read_safetensors, write_json_atomic, write_safetensors_atomic

CHECKPOINT_DIR = "checkpoints"


def _name(step: int) -> str:
    return f"step_{step:09d}"


def checkpoint_paths(out_dir: Path, step: int) -> tuple[Path, Path]:
    """(tensors .safetensors, meta .json) of the checkpoint at `step`."""
    d = Path(out_dir) / CHECKPOINT_DIR
    return d / f"{_name(step)}.safetensors", d / f"{_name(step)}.json"


def checkpoint_steps(out_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in out_dir, oldest first."""
    d = Path(out_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    steps = []
    for p in d.glob("step_*.json"):
        try:
            steps.append(int(p.stem.split("_")[1]))
        except ValueError:
            continue
    return sorted(s for s in steps if checkpoint_paths(out_dir, s)[0].exists())


def write_checkpoint(out_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write the checkpoint of `step`, then drop all but the newest `keep`; returns its JSON path."""
    (Path(out_dir) / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    data, info = checkpoint_paths(out_dir, step)
    write_safetensors_atomic(data, tensors)
    write_json_atomic(info, {"step": step, **meta})
    for old in checkpoint_steps(out_dir)[:-keep] if keep > 0 else []:
        _remove(out_dir, old)
    return info


def read_checkpoint(out_dir: Path, step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    data, info = checkpoint_paths(out_dir, step)
    try:
        meta = json.loads(info.read_text())
    except (OSError, ValueError) as e:  # damaged outside our atomic writes
        raise InterpError(f"the checkpoint of step {step} in {info.parent} is unreadable ({type(e).__name__}); delete it to resume from an older one.") from None
    return read_safetensors(data), meta


def read_checkpoint_everywhere(out_dir: Path, step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """read_checkpoint on rank 0, its bytes sent to every other rank (under torchrun only rank 0
    need see the files); in one process, read_checkpoint."""
    from safetensors.torch import load

    if not distributed.is_distributed():
        return read_checkpoint(out_dir, step)
    paths = checkpoint_paths(out_dir, step)
    tensors, meta = (distributed.broadcast_bytes(p.read_bytes() if distributed.is_main() else None) for p in paths)
    return load(tensors), json.loads(meta)


def clear_checkpoints(out_dir: Path) -> None:
    for step in checkpoint_steps(out_dir):
        _remove(out_dir, step)


def _remove(out_dir: Path, step: int) -> None:
    data, info = checkpoint_paths(out_dir, step)
    info.unlink(missing_ok=True)  # the JSON first: never a complete-looking half
    data.unlink(missing_ok=True)
