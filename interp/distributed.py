"""One run over many processes: torchrun's environment, the process group, and the few
collectives that the trainers and the recorder need.

    torchrun --nproc-per-node 4 -m interp train-sae ...      # one machine, 4 GPUs (or processes)

A command calls `session(device)` once; inside it `rank()`, `world_size()`, `is_main()` say who
this process is, and the collectives below act on every rank together. Without torchrun
(WORLD_SIZE unset or 1) nothing is initialised and every function here is a no-op for one
process, so single-process code paths stay exactly as they were.

The backend follows the device: gloo on the CPU, nccl on CUDA with rank i on cuda:LOCAL_RANK.
Collectives take tensors on any device and move them to the backend's device when needed."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from interp.device import pick_device
from interp.errors import InterpError

_OWNED = False  # True when session()/setup() created the process group (and so destroys it)


# ---- who am I ------------------------------------------------------------------------------

def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them in the environment; (0, 1, 0) without."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, logs, run.json and progress bars."""
    return rank() == 0


def shard_range(n: int, rank_: int | None = None, world: int | None = None) -> tuple[int, int]:
    """[lo, hi): this rank's contiguous part of n items; the parts of all ranks tile 0..n in rank
    order and differ in size by at most one."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return r * n // w, (r + 1) * n // w


# ---- start and stop ------------------------------------------------------------------------

def setup(device: str | torch.device | None = None) -> torch.device:
    """Join torchrun's process group (once per process) and return this rank's device.

    Without torchrun this only picks the device. Under torchrun: CUDA ranks use nccl on
    cuda:LOCAL_RANK, CPU ranks use gloo."""
    global _OWNED
    _, world, local = env_world()
    dev = pick_device(device)
    if world <= 1:
        return dev
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise InterpError(f"torchrun runs on CUDA (nccl) or the CPU (gloo), not on {dev.type}; pass --device cuda or --device cpu.")
    if not dist.is_initialized():
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, **kw)
        _OWNED = True
    return dev


def shutdown() -> None:
    """Leave the process group if setup() created it (a caller's own group is left alone)."""
    global _OWNED
    if _OWNED and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED = False


@contextmanager
def session(device: str | torch.device | None = None) -> Iterator[torch.device]:
    """`with session(args.device) as device:` around a command's work. Nested sessions (a
    script that set up the group itself, then runs several commands) share one group."""
    owner = not dist.is_initialized()
    dev = setup(device)
    try:
        yield dev
    finally:
        if owner:
            shutdown()


def barrier() -> None:
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """For work that fills a cache on disk (tokenizing text, fetching a model): rank 0 runs the
    block first, then the first rank of every other machine (which finds a shared cache filled,
    or fills its own disk's), then all the others, which only read. Each rank passes two barriers."""
    if not is_distributed():
        yield
        return
    first, node_first = rank() == 0, rank() != 0 and env_world()[2] == 0
    for _ in range(0 if first else 1 if node_first else 2):
        barrier()
    try:
        yield
    finally:
        for _ in range(2 if first else 1 if node_first else 0):
            barrier()


# ---- collectives ---------------------------------------------------------------------------

def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@contextmanager
def _on_comm_device(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """t itself if the backend can use it in place, else a copy that is written back after."""
    dev = _comm_device()
    if t.device == dev and t.is_contiguous():
        yield t
        return
    buf = t.detach().to(dev).contiguous()
    yield buf
    t.copy_(buf)


_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """t reduced over ranks in place (sum, max, min, or mean), and returned."""
    if not is_distributed():
        return t
    if op not in (*_OPS, "mean"):
        raise ValueError(f"unknown reduction {op!r}")
    with _on_comm_device(t) as buf:
        dist.all_reduce(buf, op=getattr(dist.ReduceOp, _OPS.get(op, "SUM")))
    if op == "mean":
        t.div_(dist.get_world_size())
    return t


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """t overwritten in place with rank `src`'s values, and returned."""
    if is_distributed():
        with _on_comm_device(t) as buf:
            dist.broadcast(buf, src)
    return t


def broadcast_bytes(data: bytes | None, src: int = 0) -> bytes:
    """Rank `src`'s bytes on every rank (e.g. a checkpoint file read on rank 0 only, so that the
    other machines need not see its disk). Other ranks pass None."""
    if not is_distributed():
        return data or b""
    n = broadcast(torch.tensor([len(data) if rank() == src else 0], dtype=torch.int64), src)
    buf = torch.empty(int(n), dtype=torch.uint8)
    if rank() == src and len(data):
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    return broadcast(buf, src).numpy().tobytes()


def broadcast_int(value: int, src: int = 0) -> int:
    return int(broadcast(torch.tensor([value], dtype=torch.int64), src))


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's t [n_r, ...] concatenated along dim 0 in rank order (n_r may differ)."""
    if not is_distributed():
        return t
    w = dist.get_world_size()
    dev = _comm_device()
    sizes = torch.zeros(w, dtype=torch.int64, device=dev)
    sizes[rank()] = t.shape[0]
    dist.all_reduce(sizes)
    most = int(sizes.max())
    mine = torch.zeros((most, *t.shape[1:]), dtype=t.dtype, device=dev)
    mine[: t.shape[0]] = t
    parts = [torch.empty_like(mine) for _ in range(w)]
    dist.all_gather(parts, mine)
    return torch.cat([p[: int(n)] for p, n in zip(parts, sizes.tolist())]).to(t.device)


# ---- data parallel training ----------------------------------------------------------------

def _sum_gradients(state, bucket):
    """DDP communication hook: add the ranks' gradients instead of averaging them."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])


def data_parallel(module: torch.nn.Module, gradients: str = "mean", sync_buffers: bool = True) -> torch.nn.Module:
    """`module` inside DistributedDataParallel (or `module` itself in one process).

    gradients="mean" suits a loss that is each rank's mean over its own equal-sized batch (DDP's
    default); "sum" suits a loss that is each rank's *share* of the global batch's loss (shares add
    up to the global loss, as the SAE trainer computes them). sync_buffers=False stops DDP from
    copying rank 0's buffers into the others before every forward (they are synced once here)."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    dev = next(module.parameters()).device
    kw = {}
    if not sync_buffers:  # renamed in torch 2.13; the old name still works but warns
        names = inspect.signature(DDP).parameters
        kw = {"forward_sync_buffers": False} if "forward_sync_buffers" in names else {"broadcast_buffers": False}
    ddp = DDP(module, device_ids=[dev.index] if dev.type == "cuda" else None, **kw)
    if gradients == "sum":
        ddp.register_comm_hook(None, _sum_gradients)
    elif gradients != "mean":
        raise ValueError(f"gradients must be 'mean' or 'sum', not {gradients!r}")
    return ddp
