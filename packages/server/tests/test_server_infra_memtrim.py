"""Freed heap memory goes back to the system (`cogni_server.memtrim`): what the soak's RSS showed.

Python frees the buffers of ended streams, but glibc keeps the pages when long-lived objects sit
between them; the process's RSS then only grows. `malloc_trim(0)` hands the free pages back.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from cogni_server.memtrim import libc_malloc_trim, trim_periodically

MIB = 1024 * 1024


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def fragment_the_heap() -> list[bytes]:
    """~200 MiB of 4 KiB buffers with a 600-byte survivor after each (retained stream events, in miniature;
    above pymalloc's 512 bytes, so both come from malloc's heap); the buffers are freed, the survivors pin
    the heap around them."""
    buffers, survivors = [], []
    for i in range(50_000):
        buffers.append(bytes(4096 - 33) + i.to_bytes(4, "little"))
        survivors.append(i.to_bytes(8, "little") * 75)
    del buffers
    gc.collect()
    return survivors


async def test_a_trim_gives_freed_heap_pages_back() -> None:
    assert libc_malloc_trim() is not None  # glibc, as in the Docker image and on these machines
    survivors = fragment_the_heap()
    before = rss_mib()
    trimmer = asyncio.create_task(trim_periodically(0.05))
    try:
        await asyncio.sleep(0.5)  # a few trims
    finally:
        trimmer.cancel()
    after = rss_mib()
    assert len(survivors) == 50_000
    assert before - after > 100, f"RSS {before:.0f} -> {after:.0f} MiB"
