"""Capacity bench: the latency of trivial runs, timed from a child process (see bench/capacity.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import measure
from bench.measure import RunFailed, client_for
from bench.stats import ratio, summary


async def timed_run(client: Any) -> tuple[float, float]:
    """One trivial run on a fresh thread: (ms to the run's first event, ms to its end).

    The thread is created before the clock starts: what is timed is starting and finishing a run.
    """
    thread = await client.threads.create()
    started = time.perf_counter()
    first: float | None = None
    last: Any = None
    async with asyncio.timeout(measure.RUN_TIMEOUT_S):
        async for part in client.runs.stream(thread["thread_id"], "trivial", input={"count": 0}, stream_mode="values"):
            first = first or time.perf_counter()
            if part.event == "error":
                raise RunFailed(f"error event: {part.data}")
            if part.event == "values":
                last = part.data
    ended = time.perf_counter()
    if not isinstance(last, dict) or last.get("count") != 1:
        raise RunFailed(f"last values event was {last!r}, expected {{'count': 1}}")
    return ((first or ended) - started) * 1000, (ended - started) * 1000


async def run_latency(url: str, runs: int, warmup: int) -> dict[str, Any]:
    """Median/p99 of time-to-first-event ("start") and whole-run time of `runs` sequential runs."""
    starts: list[float] = []
    totals: list[float] = []
    failures: list[str] = []
    async with client_for(url) as client:
        for _ in range(warmup):
            await timed_run(client)
        for _ in range(runs):
            try:
                start_ms, total_ms = await timed_run(client)
            except (RunFailed, TimeoutError, OSError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            starts.append(start_ms)
            totals.append(total_ms)
    return {
        "runs": len(totals),
        "failures": len(failures),
        "errors": failures[:5],
        "start": summary(starts) if starts else {},
        "run": summary(totals) if totals else {},
    }


LATENCY_SCRIPT = (
    "import asyncio, json, sys\n"
    "from bench.capacity_latency import run_latency\n"
    "print(json.dumps(asyncio.run(run_latency(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))\n"
)
REPO_ROOT = Path(__file__).resolve().parents[1]


async def run_latency_elsewhere(url: str, runs: int, warmup: int) -> dict[str, Any]:
    """`run_latency` in a child process, so the client timing runs does not share an event loop
    with the thousands of stream readers (this loop keeps draining them meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LATENCY_SCRIPT,
        url,
        str(runs),
        str(warmup),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(measure.RUN_TIMEOUT_S + runs * 30):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"latency client exited with {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def latency_factors(idle: dict[str, Any], loaded: dict[str, Any]) -> dict[str, float | None]:
    """Loaded / idle for the start and whole-run medians and p99s (>1: slower with streams open)."""
    out: dict[str, float | None] = {}
    for part in ("start", "run"):
        for stat in ("median_ms", "p99_ms"):
            out[f"{part}_{stat.removesuffix('_ms')}"] = ratio(
                (loaded.get(part) or {}).get(stat), (idle.get(part) or {}).get(stat)
            )
    return out
