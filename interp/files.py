"""Files written so that a crash never leaves half of one: each is written to a temporary name
in the same folder, flushed to disk and renamed over the target. No pickle anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import InterpError

if TYPE_CHECKING:  # torch is imported only by the functions that write tensors, so text files stay light
    import torch


def write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # per process: ranks never share one
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())


def copy_atomic(src, path: Path) -> None:
    """Copy a file (a path, or an importlib.resources Traversable) so that `path` is never half written."""
    with src.open("rb") if hasattr(src, "open") else open(src, "rb") as f:
        write_atomic(path, f.read())


def write_safetensors_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    write_atomic(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata))


def read_safetensors(path: Path, error: type[InterpError] = InterpError) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing or damaged file raises `error` in one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(Path(path).read_bytes())
    except FileNotFoundError:
        raise error(f"{path} does not exist; check the path.") from None
    except (SafetensorError, ValueError, OSError) as e:
        raise error(f"{path} is truncated or not a safetensors file ({e}); save or copy it again.") from None
