"""Files written so that a crash never leaves half of one: each is written to a temporary name
in the same folder, fsynced, renamed over the target, and the folder fsynced after the rename
(what SQLite and PyTorch's checkpointing do against power loss: without it the rename itself may
be lost). A full disk or any other OSError while writing becomes one line (InterpError), with the
temporary file removed and the earlier file, if any, left as it was. No pickle anywhere."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import InterpError

DURABLE = True  # fsync files and folders; bench/record.py turns it off to measure what it costs


def fsync_file(f) -> None:
    """Flush an open file to disk (when DURABLE)."""
    f.flush()
    if DURABLE:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename (or a new file) in `folder` durable (when DURABLE)."""
    if not DURABLE:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_error(path: Path, e: OSError) -> InterpError:
    """The one line for a failed write of `path`."""
    if e.errno == errno.ENOSPC:
        return InterpError(f"the disk is full while writing {path}; nothing written before it was lost: "
                           "free space and rerun the same command.")
    return InterpError(f"cannot write {path} ({e.strerror or e}); nothing written before it was lost: "
                       "check the folder's permissions and space, then rerun the same command.")


if TYPE_CHECKING:  # torch is imported only by the functions that write tensors, so text files stay light
    import torch


def write_atomic(path: Path, data: bytes, sync: bool = True) -> None:
    """`path` holds `data`, or (on any OSError, raised as one line) what it held before. sync=False
    skips the two fsyncs, for files that are many and cheap to remake (a dashboard's pages): they are
    still never half written, but may be lost to a power cut."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # per process: ranks never share one
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                fsync_file(f)
        os.replace(tmp, path)
        if sync:
            fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None


def write_text_atomic(path: Path, text: str, sync: bool = True) -> None:
    write_atomic(path, text.encode("utf-8"), sync)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())


def copy_atomic(src, path: Path, sync: bool = True) -> None:
    """Copy a file (a path, or an importlib.resources Traversable) so that `path` is never half written."""
    with src.open("rb") if hasattr(src, "open") else open(src, "rb") as f:
        write_atomic(path, f.read(), sync)


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
