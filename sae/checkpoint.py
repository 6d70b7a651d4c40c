"""Atomic files and training checkpoints.

A checkpoint is two files in <out_dir>/checkpoints/: step_<n>.safetensors (parameters, Adam
moments, RNG states, dead-latent counters) and step_<n>.json (step, configs, scalars). Each is
written to a temporary name, flushed and renamed, the JSON last: a checkpoint whose JSON
exists is complete, so a run killed at any instant resumes from the last complete one. No
pickle anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from sae.errors import SAEError

CHECKPOINT_DIR = "checkpoints"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_safetensors_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_atomic(path, save(tensors, metadata=metadata))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load(Path(path).read_bytes())
    except FileNotFoundError:
        raise SAEError(f"{path} does not exist; check the path.") from None
    except (SafetensorError, ValueError, OSError) as e:
        raise SAEError(f"{path} is truncated or not a safetensors file ({e}); save or copy it again.") from None


def _name(step: int) -> str:
    return f"step_{step:09d}"


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
    return sorted(s for s in steps if (d / f"{_name(s)}.safetensors").exists())


def write_checkpoint(out_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep: int = 2) -> Path:
    d = Path(out_dir) / CHECKPOINT_DIR
    d.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(d / f"{_name(step)}.safetensors", tensors)
    write_json_atomic(d / f"{_name(step)}.json", {"step": step, **meta})
    for old in checkpoint_steps(out_dir)[:-keep] if keep > 0 else []:
        (d / f"{_name(old)}.json").unlink(missing_ok=True)  # incomplete first, then the data
        (d / f"{_name(old)}.safetensors").unlink(missing_ok=True)
    return d / f"{_name(step)}.json"


def clear_checkpoints(out_dir: Path) -> None:
    d = Path(out_dir) / CHECKPOINT_DIR
    for step in checkpoint_steps(out_dir):
        (d / f"{_name(step)}.json").unlink(missing_ok=True)
        (d / f"{_name(step)}.safetensors").unlink(missing_ok=True)


def checkpoint_paths(out_dir: Path, step: int) -> tuple[Path, Path]:
    """(tensors .safetensors, meta .json) of the checkpoint at `step`."""
    d = Path(out_dir) / CHECKPOINT_DIR
    return d / f"{_name(step)}.safetensors", d / f"{_name(step)}.json"


def read_checkpoint(out_dir: Path, step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = checkpoint_paths(out_dir, step)
    return read_safetensors(tensors), json.loads(meta.read_text())
