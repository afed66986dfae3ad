"""The ``convzoo`` command's own process keeps the memory a training step frees for the next
step (glibc's malloc); the library leaves a user's process as it is."""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the largest block glibc will serve from its heap rather than map (its maximum on 64 bits)
HEAP_BLOCK_MAX = 32 * 2**20


def keep_freed_memory() -> bool:
    """Serve blocks up to 32 MB from glibc's heap and never trim it, instead of mapping each
    freed step buffer back to the system and faulting it in again, zeroed, page by page: one
    epoch of ``convzoo train`` on 2 CPU cores took 24-25 s of CPU time instead of 29-31 s
    (2.9 million page faults -> 0.3-0.45 million) for 10% more peak memory (1.05 GB, not 0.95;
    benchmarks/RESULTS.md). A ``MALLOC_*`` setting or malloc tunable the user exported wins.
    Returns whether it is in effect (not on other C libraries or systems)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not sys.platform.startswith("linux") or "glibc.malloc" in tunables:
        return False
    if any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; musl has none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    )
