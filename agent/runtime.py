"""The serving process's memory: glibc malloc's arenas, and giving freed memory back.

Why (docs/agent.md, "Memory"): torch buffers allocated from many threads filled as many glibc
arenas, which keep what is freed into them, so RSS climbed under /chat load and stayed. The encoder
runs on one thread; this module caps the arenas and returns free pages to the kernel.
glibc only: elsewhere these are no-ops.
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
