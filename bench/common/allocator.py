"""Keep freed tensor memory in the process instead of handing it back to the kernel.

glibc serves every allocation above its mmap threshold (128 KiB to 32 MiB, adapting) with a fresh
mmap and unmaps it on free. A whole-image forward allocates feature maps of several MiB per layer,
so every layer of every image page-faults its output in again: on this 2-core machine a 480x320
forward of HyperRes 4 x 32 spent 40 % of its time in the kernel (83 ms wall, about 31,000 page
faults). Raising the mmap and trim thresholds lets freed maps be reused: 46 ms, a few faults.
Numbers are unchanged (allocation only); the cost is a resident size that stays at its peak.
"""

from __future__ import annotations

import ctypes
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters from glibc's malloc.h
KEEP_BYTES = 1 << 30  # allocations up to this size come from (and return to) the heap


@cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on; no library search at start-up
    except (OSError, AttributeError, TypeError):  # macOS, Windows: no mallopt (musl has one that returns 0)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
