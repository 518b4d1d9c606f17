"""Opt-in memory diagnostics: periodic tracemalloc snapshots, to find what keeps growing in a soak.

Off by default. With `COGNI_TRACEMALLOC_DIR` set, the server starts tracemalloc (unless
`PYTHONTRACEMALLOC` already did, which also sees what start-up allocated) and every
`COGNI_TRACEMALLOC_SECONDS` (after `COGNI_TRACEMALLOC_DELAY_SECONDS`) writes
`snapshot-<pid>-<n>-<seconds>s.tracemalloc` there, plus one JSON line per snapshot in
`summary-<pid>.jsonl` (RSS, traced bytes, glibc's heap, asyncio tasks, the most numerous object
types), so Python-heap growth can be told from allocator growth (RSS rising while traced bytes do not).
`python -m cogni_server.memdiag A B` prints what grew between two snapshots, by traceback.
Tracing slows the server (several times with deep tracebacks): for diagnosis only, never in production.
Only the operator's environment can turn it on; no route exposes it.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import itertools
import json
import logging
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("cogni_server.memdiag")


def rss_kib() -> int | None:
    """This process's resident memory (VmRSS), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def malloc_info_kib() -> dict[str, int] | None:
    """glibc's heap (mallinfo2): bytes in use by malloc's callers vs free but kept, in KiB.

    pymalloc's arenas are mapped outside malloc, so RSS minus these minus the start-up baseline is
    roughly what pymalloc holds: growth there while traced bytes stay flat is arena fragmentation."""
    name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(name), "mallinfo2", None) if name else None
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    return {
        "in_use_kib": (info.uordblks + info.hblkhd) // 1024,
        "free_kib": info.fordblks // 1024,
        "mmapped_kib": info.hblkhd // 1024,
    }


def top_types(limit: int = 25) -> dict[str, int]:
    """The most numerous live object types tracked by the garbage collector (a growing count is a lead)."""
    counts = Counter(type(obj).__qualname__ for obj in gc.get_objects())
    return dict(counts.most_common(limit))


def take(directory: Path, started: float, number: int) -> Path:
    """Dump one snapshot and append its summary line; returns the snapshot's path."""
    directory.mkdir(parents=True, exist_ok=True)
    elapsed = int(time.monotonic() - started)
    path = directory / f"snapshot-{os.getpid()}-{number:03d}-{elapsed:06d}s.tracemalloc"
    tracemalloc.take_snapshot().dump(str(path))
    current, peak = tracemalloc.get_traced_memory()
    try:
        tasks = Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())
    except RuntimeError:
        tasks = Counter()
    summary = {
        "t_s": elapsed,
        "rss_kib": rss_kib(),
        "traced_kib": current // 1024,
        "traced_peak_kib": peak // 1024,
        "tracemalloc_overhead_kib": tracemalloc.get_tracemalloc_memory() // 1024,
        "malloc": malloc_info_kib(),
        "asyncio_tasks": sum(tasks.values()),
        "task_kinds": dict(tasks.most_common(10)),
        "gc_objects": len(gc.get_objects()),
        "top_types": top_types(),
        "snapshot": path.name,
    }
    with (directory / f"summary-{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(summary) + "\n")
    return path


async def snapshot_periodically(
    directory: Path, interval_seconds: float, frames: int, delay_seconds: float = 0
) -> None:
    """After `delay_seconds`, start tracing if needed, then a snapshot at once and every
    `interval_seconds`, until cancelled. A delay skips the warm-up: every block traced then was
    allocated after it, so what is still alive in a late snapshot is exactly what outlived the warm-up."""
    await asyncio.sleep(delay_seconds)
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    log.warning("tracemalloc on (%d frames): snapshots every %.1f s in %s", frames, interval_seconds, directory)
    started = time.monotonic()
    for number in itertools.count():
        take(directory, started, number)
        await asyncio.sleep(interval_seconds)


def diff(old: Path, new: Path, *, key: str = "traceback", limit: int = 20, frames: int = 8) -> str:
    """What grew from `old` to `new`, largest first, grouped by `key` ("traceback", "lineno", "filename")."""
    before = tracemalloc.Snapshot.load(str(old))
    after = tracemalloc.Snapshot.load(str(new))
    stats = after.compare_to(before, key)
    total = sum(s.size_diff for s in stats)
    lines = [f"{old.name} -> {new.name}: {total / 1024 / 1024:+.1f} MiB traced in all"]
    for stat in stats[:limit]:
        lines.append(
            f"\n{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks "
            f"(now {stat.size / 1024:.1f} KiB in {stat.count})"
        )
        lines += [f"    {line}" for line in stat.traceback.format(limit=frames, most_recent_first=True)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cogni_server.memdiag", description=diff.__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--key", choices=("traceback", "lineno", "filename"), default="traceback")
    parser.add_argument("--limit", type=int, default=20, help="how many groups (20)")
    parser.add_argument("--frames", type=int, default=8, help="frames shown per traceback (8)")
    args = parser.parse_args(argv)
    print(diff(args.old, args.new, key=args.key, limit=args.limit, frames=args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
