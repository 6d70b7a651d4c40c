"""Keep freed memory in the process's heap between training steps.

glibc's malloc returns a freed block above its mmap threshold (which grows with use, to at most
32 MB) to the kernel, and trims the top of the heap once more than twice that threshold lies free
there. A TopK-family step allocates and frees its two [d_sae, d_in] weight gradients (10.6 MB each
at d_in 576, d_sae 4608) every step, so each step faulted their ~5,400 pages back in: about 10 ms
of system time a step, measured with getrusage. `keep_freed_memory()` fixes both thresholds once
for the process (blocks up to 32 MB come from the heap; up to 256 MB of free heap stays mapped), so
those gradients reuse the same pages. Elsewhere than glibc it does nothing."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (once per process); True if they were set."""
    if not _done:
        _done.append(_set())
    return _done[0]


def _set() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 256 << 20))
