"""Keep freed memory in the process instead of giving it back to the kernel after every forward.

glibc's malloc serves large blocks (a forward's attention scores and MLP activations, 1-30 MB
each) with fresh mmaps and unmaps them when torch frees them, so every batch touches new pages:
about 550,000 minor page faults for 4096 tokens through the GPT-2-small shape, and on a virtual
machine a fault on a page the host has taken back is slow and varies from run to run. Measured
(bench/results/record.md): the bare forward 13% faster, its faults 0, its spread narrower. A
sparse SAE training step (sae/trainer.py) is the same case: its two [d_sae, d_in] weight gradients,
10.6 MB each at d_in 576, faulted ~5,400 pages back in every step (~10 ms of system time).
`keep_freed_memory()` raises the mmap threshold to glibc's maximum (32 MB) and turns off trimming,
so freed blocks are reused. The price: the process keeps its peak heap until it exits, which a
recording, a training run or a benchmark does anyway. A no-op where malloc is not glibc's (macOS, musl)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger on 64-bit
_done = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep and reuse freed memory; True if it did (idempotent)."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
