"""Where a trivial run's time goes, seen from the official client: `python -m bench phases`.

Starts ours and the floor behind HTTP (`bench/floor_http.py`) one after the other, each on a fresh
database, and times the phases of `threads.create()` + `runs.stream(..., stream_mode="values")` with
httpx's request and response hooks on the SDK's own client:

- create: `POST /threads` until its answer is read;
- stream headers: `POST /threads/{id}/runs/stream` until the response's headers arrive;
- first values: from the headers to the first `values` event (the run starts, reads its thread's
  checkpoint and streams its input);
- to the check: from that event until the client sends its `GET` of the run (the graph, its
  checkpoints, the run's end, the stream closing);
- check: the client's `GET /threads/{id}/runs/{run_id}` after a stream with no `end` event;
- total.

Medians over `--runs` runs after `--warmup`. The difference between the two targets, phase by phase,
is what ours does beyond the minimum a durable server must (see floor_http.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import httpx
from langgraph_sdk import get_client

from bench import floor_http, servers
from bench.servers import Target

PHASES = ("create", "stream headers", "first values", "to the check", "check", "total")


async def timed_runs(url: str, runs: int, warmup: int) -> dict[str, float]:
    """Median ms per phase over `runs` trivial runs against `url`."""
    client = get_client(url=url)
    marks: list[float] = []

    async def on_request(_request: httpx.Request) -> None:
        marks.append(time.perf_counter())

    async def on_response(_response: httpx.Response) -> None:
        marks.append(time.perf_counter())

    client.http.client.event_hooks = {"request": [on_request], "response": [on_response]}
    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    try:
        for i in range(warmup + runs):
            marks.clear()
            started = time.perf_counter()
            thread = await client.threads.create()
            first: float | None = None
            async for part in client.runs.stream(
                thread["thread_id"], "trivial", input={"count": 0}, stream_mode="values"
            ):
                if first is None and part.event == "values":
                    first = time.perf_counter()
            ended = time.perf_counter()
            if len(marks) != 6 or first is None:  # create, stream, the check: three requests, three answers
                raise RuntimeError(f"expected 3 requests with a values event, saw {len(marks) // 2}")
            if i < warmup:
                continue
            spans = (
                marks[1] - started,
                marks[3] - marks[2],
                first - marks[3],
                marks[4] - first,
                marks[5] - marks[4],
                ended - started,
            )
            for phase, span in zip(PHASES, spans, strict=True):
                samples[phase].append(span * 1000)
    finally:
        await client.aclose()
    return {phase: statistics.median(values) for phase, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench phases", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    starters: list[tuple[str, Callable[[str], AbstractContextManager[Target]]]] = [
        ("ours", servers.ours),
        ("floor-http", floor_http.floor_http),
    ]
    results: dict[str, dict[str, float]] = {}
    for name, start in starters:
        with start("") as target:  # the trivial graph calls no model
            print(f"[bench] {name}: {args.runs} trivial runs …", flush=True)
            results[name] = asyncio.run(timed_runs(target.url, args.runs, args.warmup))
    print(report(results))
    return 0


def report(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = ["| phase (median ms) | " + " | ".join(names) + " | difference |", "|---" * (len(names) + 2) + "|"]
    for phase in PHASES:
        values = [results[name][phase] for name in names]
        diff = f"{values[0] - values[-1]:+.2f}" if len(values) > 1 else ""
        lines.append(f"| {phase} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {diff} |")
    return "\n".join(lines)
