"""A model's weights in a folder: the state without buffers (masks and rotary tables are rebuilt
from the config), in float32 on the CPU, as one safetensors file; and the check on loading that
the file and the config describe the same model. Shared by converted Hugging Face models
(interp/models/converted.py) and models trained here (interp/lm/folder.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from interp.errors import InterpError
from interp.files import write_safetensors_atomic


def save_weights(model: torch.nn.Module, path: Path) -> None:
    buffers = {name for name, _ in model.named_buffers()}
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items() if k not in buffers}
    write_safetensors_atomic(path, state)


def load_weights(model: torch.nn.Module, path: Path, config_path: Path, remedy: str, assign: bool = False) -> None:
    """Load `path` into `model`; a missing, truncated or mismatched file raises one line ending in `remedy`."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (OSError, Exception) as e:  # safetensors raises its own error type for a truncated file
        raise InterpError(f"cannot read {path} ({str(e).splitlines()[0]}); {remedy}.") from None
    missing, unexpected = model.load_state_dict(state, strict=False, assign=assign)
    buffers = {name for name, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise InterpError(f"{path} does not match {config_path} (missing {sorted(set(missing) - buffers)[:3]}, "
                          f"unexpected {unexpected[:3]}); {remedy}.")
