"""Fewer glibc malloc arenas, for a smaller peak memory.

glibc gives a thread that allocates while another holds an arena an arena of its own, up to
eight per core, and memory freed in one arena is not handed to another. repofs moves
megabyte buffers between the trio loop and its worker threads (packs, read ranges, blob
plaintexts), so each arena grew to its own high-water mark. With two arenas, on the large
benchmark dataset (alternating runs, times the same within their noise): backup peak RSS
124-128 MiB instead of 133-137, tar dump 96-99 instead of 123-136, zip dump 115-119 instead
of 161-163.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h
ARENAS = 2


def limit_arenas(count: int = ARENAS) -> bool:
    """Ask glibc for at most ``count`` malloc arenas; call it before starting threads (one
    that has an arena keeps it). Leaves things alone where the C library is not glibc or the
    user set ``MALLOC_ARENA_MAX``; returns whether the limit was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, count))
    except (ValueError, OSError, AttributeError):  # no such confstr name, no libc handle
        return False
