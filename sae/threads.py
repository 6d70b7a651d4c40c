"""Thread counts inside a sparse (TopK-family) training step, whose two kinds of work want
different ones.

The dense encoder product, the selection and the sparse passes over the k rows of each token
are a handful of large operators that speed up with every thread, as does Adam's one fused
update over all the weights. The rest of the step (norms, elementwise terms, clipping) is a few
dozen small ones, each an OpenMP parallel region
that ends in a barrier; when other processes share the cores, the barrier waits on a
descheduled thread and those operators run several times slower on two threads than on one.
So the trainer runs a sparse step inside `small_ops()` (one thread) and the large operators
inside `wide()` (the caller's thread count again). A side effect: the small operators' sums
no longer depend on the thread count."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_outer = threading.local()  # the thread count outside the innermost small_ops(), if any


@contextmanager
def small_ops() -> Iterator[None]:
    """One torch thread inside; the count as it was afterwards."""
    n, before = torch.get_num_threads(), getattr(_outer, "n", None)
    _outer.n = n
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)
        _outer.n = before


@contextmanager
def wide() -> Iterator[None]:
    """Inside small_ops(): the thread count from outside it, for one large product. Elsewhere: nothing changes."""
    n = getattr(_outer, "n", None)
    now = torch.get_num_threads()
    if n is None or n == now:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(now)
