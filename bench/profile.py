"""`uv run python -m bench profile`: where our server spends its time on a trivial run and on a
1,000-token run, sampled with py-spy while the bench's own loops drive it.

It starts the mock model and our server exactly as the bench does (`bench.servers`), attaches
`py-spy record --format raw` to the server process for each workload, and prints two breakdowns of
the samples where a server thread ran Python code. Samples whose leaf is uvloop's C loop (its epoll
wait and C-level I/O; py-spy cannot tell them apart without native frames) or an idle pool thread are
counted separately and left out of the percentages.: by the component that holds
the leaf frame (exclusive time) and by component anywhere on the stack (inclusive time). The raw
stacks go to `bench/results/profile-<workload>-<UTC time>.txt` (flame-graph input, e.g. for
`inferno-flamegraph` or speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import measure, servers

RESULTS = Path(__file__).resolve().parent / "results"
# component -> path fragments of its frames; the first match wins, so specific before general
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("checkpointer (langgraph-checkpoint-postgres)", ("langgraph/checkpoint/",)),
    ("postgres driver (psycopg, pool)", ("psycopg/", "psycopg_pool/", "psycopg_binary/")),
    ("graph execution (langgraph, langchain-core)", ("langgraph/", "langchain_core/")),
    ("our broker and SSE", ("cogni_server/streaming/", "cogni_server/api/sse")),
    ("our run executor", ("cogni_server/runs/",)),
    ("our storage (SQL building, rows)", ("cogni_server/storage/",)),
    ("our services and routes", ("cogni_server/services/", "cogni_server/api/", "cogni_server/auth/")),
    ("our other code", ("cogni_server/",)),
    ("mock model client (httpx, openai)", ("httpx/", "httpcore/", "openai/", "bench/graphs/")),
    ("JSON (orjson, json, ormsgpack)", ("orjson", "/json/", "ormsgpack")),
    ("validation (pydantic)", ("pydantic/", "pydantic_core/")),
    ("HTTP server (uvicorn, starlette, fastapi)", ("uvicorn/", "starlette/", "fastapi/", "h11/", "httptools/")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/", "selectors.py")),
    ("logging", ("logging/",)),
)


# the process's entry frames (cli, uvicorn.run, asyncio.run) sit under every stack: not "inclusive" work
ROOT_FRAMES = 8


def component(frame: str) -> str:
    for name, fragments in COMPONENTS:
        if any(fragment in frame for fragment in fragments):
            return name
    return "other (stdlib, C extensions)"


# leaves that are waiting, not working: uvloop's run loop (C) and thread-pool threads waiting for work
IDLE_LEAVES = (
    "Runner.run (asyncio/runners.py",
    "_worker (concurrent/futures/thread.py",
    "Condition.wait (threading.py",
)


def breakdown(raw: str) -> tuple[int, int, Counter[str], Counter[str]]:
    """(Python samples, loop/idle samples, exclusive and inclusive by component) of py-spy's raw output."""
    total, idle, exclusive, inclusive = 0, 0, Counter[str](), Counter[str]()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        total += count
        exclusive[component(frames[-1])] += count
        for name in {component(frame) for frame in frames[ROOT_FRAMES:]}:
            inclusive[name] += count
    return total, idle, exclusive, inclusive


def report(title: str, raw: str, wall_s: float, runs: int) -> str:
    total, idle, exclusive, inclusive = breakdown(raw)
    lines = [f"## {title}: {runs} runs in {wall_s:.1f} s; {total} Python samples, {idle} in uvloop or idle", ""]
    lines += ["| component | exclusive | inclusive |", "|---|---|---|"]
    for name, count in sorted(inclusive.items(), key=lambda item: -exclusive[item[0]]):
        lines.append(f"| {name} | {100 * exclusive[name] / max(total, 1):.1f}% | {100 * count / max(total, 1):.1f}% |")
    return "\n".join(lines)


def record(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "-o", str(out)]
    # --nonblocking: the server is never paused by the sampler. Not --gil: py-spy then charges the
    # loop's idle time to the last Python frame that held the GIL (a stale frame), which misleads.
    proc = subprocess.Popen([*command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached
    if proc.poll() is not None:
        raise RuntimeError(f"py-spy could not attach: {proc.stderr.read().decode() if proc.stderr else ''}")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    proc.wait(timeout=60)


async def trivial(url: str, runs: int) -> None:
    async with measure.client_for(url) as client:
        for _ in range(runs):
            await measure.trivial_run(client)


async def tokens(url: str, llm_url: str, tokens: int, runs: int) -> None:
    async with measure.client_for(url) as client:
        for _ in range(runs):
            await measure.llm_run(client, llm_url, tokens)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="trivial runs to sample (default 300)")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per answer (default 1000)")
    parser.add_argument("--token-runs", type=int, default=10, help="token runs to sample (default 10)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--ours-redis", default=None, help="Redis URL: profile the Redis broker")
    args = parser.parse_args(list(argv))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    sections = []
    with servers.mock_llm() as llm_url, servers.ours(llm_url, redis_url=args.ours_redis) as target:
        assert target.pid is not None
        asyncio.run(trivial(target.url, 20))  # warm-up, not sampled
        token_title = f"{args.tokens}-token run"
        workloads = (
            ("trivial run", args.runs, lambda: trivial(target.url, args.runs)),
            (token_title, args.token_runs, lambda: tokens(target.url, llm_url, args.tokens, args.token_runs)),
        )
        for title, runs, drive in workloads:
            out = RESULTS / f"profile-{title.split()[0]}-{stamp}.txt"
            spy = record(target.pid, out, args.rate)
            started = time.perf_counter()
            try:
                asyncio.run(drive())
            finally:
                wall = time.perf_counter() - started
                stop(spy)
            sections.append(report(title, out.read_text(), wall, runs) + f"\n\nraw stacks: {out}")
    print("\n\n".join(sections))
    return 0
