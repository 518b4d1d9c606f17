"""Give the heap memory Python has freed back to the operating system, periodically (glibc only).

Under steady streaming traffic the in-memory broker keeps events for a while and frees them later,
interleaved with short-lived buffers; glibc's allocator then holds the freed pages in fragmented heaps
and the process's RSS keeps climbing although live objects do not (measured in a soak: 732 MiB RSS,
~150 MiB of live Python objects; one `malloc_trim(0)` brought it to 332 MiB). `malloc_trim(0)` returns
free pages of every arena to the system. It runs in a worker thread (it locks the allocator, not the
GIL) every `COGNI_MALLOC_TRIM_SECONDS`; on a C library without it (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger("cogni_server.memtrim")


def libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def trim_periodically(interval_seconds: float) -> None:
    """Every `interval_seconds`, `malloc_trim(0)` in a thread, until cancelled."""
    trim = libc_malloc_trim()
    if trim is None:
        log.info("no malloc_trim in this C library: freed heap memory is left to the allocator")
        return
    while True:
        await asyncio.sleep(interval_seconds)
        started = time.monotonic()
        await asyncio.to_thread(trim, 0)
        log.debug("malloc_trim took %.1f ms", (time.monotonic() - started) * 1000)
