"""The serving process's memory: glibc malloc's arenas, and giving freed memory back.

RSS under /chat load used to climb and stay: 1,000 requests at concurrency 32 took the server from
450 MiB idle to a 1,451 MiB plateau (1,519 peak), still 1,426 MiB idle afterwards (the issue saw
661 -> 2,030). glibc gives every thread that allocates under contention an arena of its own (up
to 8 per core) and an arena keeps what is freed into it; the encoder's large per-request torch
buffers were allocated from up to 40 anyio worker threads, filling as many arenas. The encoder
now runs on one thread (agent.embeddings), the arenas are capped here, and freed pages are
returned to the kernel periodically: same load, 443 MiB idle, 604 plateau, 642 peak, 546 idle
afterwards (bench/memory.py measures it). glibc only: elsewhere these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8   # mallopt parameter numbers, from glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def cap_malloc_arenas(arena_max: int) -> bool:
    """Limit glibc to `arena_max` malloc arenas (0: leave glibc's default). Call it before the
    process starts its threads: arenas that exist already stay. Returns whether glibc took it."""
    libc = _libc()
    if arena_max <= 0 or libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arena_max))


def release_free_memory() -> bool:
    """Return free pages of every arena to the kernel (malloc_trim(0)); True if any were."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
