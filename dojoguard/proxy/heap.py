"""Keeping the proxy's resident memory flat over months of photo uploads (glibc's malloc).

Measured with ``benchmarks/soak_bench.py``: under mixed load Python's own
allocations stay flat (tracemalloc), yet the process's resident memory
crept up, because glibc's malloc kept memory it had been given back:

- glibc serves a request above its mmap threshold (128 kB at start) with a
  fresh mapping and unmaps it on free, but each such free raises the
  threshold, up to 32 MB. After the first few uploads, a 4 MB photo body is
  carved out of a heap instead, and a heap only shrinks from its top:
  fragments pinned by small objects stay resident. Setting the threshold
  explicitly (which also switches its adjustment off) keeps every large
  body in its own mapping, returned to the system when freed.
  The threshold is 512 kB, not lower: asyncio reads a socket into a fresh
  256 kB buffer and shrinks it to what arrived, so at 256 kB every read of
  every connection mapped, remapped and unmapped memory (traced: two of
  each per message write, none at 512 kB), which cost up to 0.3 ms of CPU
  a write.
- Every thread that allocates can get its own arena (up to eight per core);
  the proxy's few threads need no more than two.
- ``malloc_trim`` returns free pages inside the heaps; the proxy calls it
  every minute (it takes well under a millisecond, off the event loop).

None of this changes what the proxy does, only where freed memory goes.
Elsewhere than glibc (macOS, musl) these calls are skipped. Set
``DOJOGUARD_MALLOC_TUNING=off`` in the environment to leave malloc alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 512 * 1024
ARENA_MAX = 2
TRIM_EVERY_S = 60.0

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux") and os.environ.get("DOJOGUARD_MALLOC_TUNING", "on") != "off":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") and hasattr(libc, "gnu_get_libc_version"):
                    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
                    _libc = libc
            except OSError:
                pass
    return _libc or None


def tune() -> bool:
    """Set the mmap threshold and arena limit; True if glibc took both. Call before threads start."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) & bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX))


def trim() -> bool:
    """Return free heap pages to the system; True if any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
