"""Where SAE training batches come from: a `BatchSource` is a callable `batches(start_step)` that
yields {hook: [batch_size, d]} from step `start_step` on, the same batches on every call (what a
resumed run needs). One factory per source:

    batches = store_source(store, hooks, batch_size, seed, skip_bos=True, device="cpu")
    batches = stream_source(model, windows, hooks, batch_size, seed, skip_bos=True, device="cpu")

Under torchrun both yield this rank's rows of each global batch."""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from interp import distributed
from interp.errors import InterpError
from interp.store import ActivationStore
from interp.stream import stream_activations


class BatchSource(Protocol):
    def __call__(self, start_step: int) -> Iterator[dict[str, torch.Tensor]]: ...


def check_split(batch_size: int) -> None:
    world = distributed.world_size()
    if batch_size < world:
        raise InterpError(f"a batch of {batch_size} tokens cannot be split over {world} ranks; use a larger --batch-size.")


def store_source(store: ActivationStore, hooks: list[str], batch_size: int, seed: int, skip_bos: bool,
                 device: torch.device | str) -> BatchSource:
    """Shuffled batches from an on-disk activation store; epochs repeat with new permutations."""
    check_split(batch_size)
    rank, world = distributed.rank(), distributed.world_size()

    def batches(start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        for b in store.iter_batches(hooks, batch_size, seed=seed, start_step=start_step, skip_bos=skip_bos,
                                    rank=rank, world=world):
            yield {h: x.to(device) for h, x in b.items()}

    return batches


def stream_source(model, windows: torch.Tensor, hooks: list[str], batch_size: int, seed: int, skip_bos: bool,
                  device: torch.device | str) -> BatchSource:
    """Batches recorded on the fly from `model` over token `windows` (through interp.stream's shuffle buffer)."""
    check_split(batch_size)

    def batches(start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        for b in stream_activations(model, windows, hooks, batch_size=batch_size, seed=seed,
                                    start_step=start_step, skip_bos=skip_bos):
            yield {h: x.to(device) for h, x in b.items()}

    return batches
