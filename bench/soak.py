"""Soak: N minutes of mixed traffic against one instance of our server, sampling its RSS and open fds.

    uv run python -m bench soak --minutes 30 --warmup-minutes 5
    uv run python -m bench soak --minutes 10 --ours-redis auto      (Redis broker, own database index)

Starts the mock model and `cogni-server serve` on a fresh database (bench/servers.py), then keeps
`--clients` SDK clients busy with a mix a real deployment sees: trivial runs streamed on new threads,
LLM runs streamed token by token, multi-turn runs on a few long-lived threads (`runs.wait`), background
runs joined afterwards, thread searches and state reads. Every `--sample-seconds` (default 60) it reads
the server's resident memory and open file descriptors from /proc. The verdict compares the last
sample with the first one after warm-up: a leak shows as steady growth once caches and pools are warm
(target: RSS growth under 5% over 30 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from bench import measure, report, servers
from bench.procmem import tree_pids, tree_rss_kib
from bench.redisdb import fresh_redis_database

RSS_TARGET_PCT = 5.0
RETAINED = re.compile(r'^cogni_stream_retained_bytes\{store="(?P<store>\w+)"\} (?P<value>\S+)$', re.MULTILINE)
LONG_THREADS = 4
KINDS = ("trivial", "llm", "multi_turn", "background", "search")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the traffic runs (30)")
    parser.add_argument("--warmup-minutes", type=float, default=5.0, help="growth is counted after this (5)")
    parser.add_argument("--sample-seconds", type=float, default=60.0, help="seconds between samples (60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent SDK clients (8)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per LLM answer (200)")
    parser.add_argument(
        "--ours-redis", metavar="URL", help="use the Redis broker at URL ('auto': an empty index on the local Redis)"
    )
    parser.add_argument(
        "--only", action="append", choices=KINDS, help="only this kind of traffic (repeatable; default: the mix)"
    )
    parser.add_argument("--out", type=Path, help="JSON output path (default: bench/results/soak-<time>.json)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_seconds <= 0 or args.clients < 1 or args.tokens < 1:
        parser.error("--minutes, --sample-seconds, --clients and --tokens must be positive")
    if not 0 <= args.warmup_minutes < args.minutes:
        parser.error("--warmup-minutes must be >= 0 and below --minutes")
    return args


def open_fds(root: int) -> int | None:
    """Open file descriptors of `root`'s process tree (None when it is gone)."""
    pids = tree_pids(root)
    if root not in pids:
        return None
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


@dataclass
class Traffic:
    """Counts of what the clients did, by kind; the first few failures."""

    done: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def ok(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1

    def fail(self, kind: str, exc: BaseException) -> None:
        self.failures += 1
        if len(self.errors) < 10:
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")


async def multi_turn(client: LangGraphClient, thread_id: str) -> None:
    """One more turn on a long-lived thread (its checkpoints keep growing, as a conversation's do)."""
    await client.runs.wait(thread_id, "trivial", input={"count": 0})
    await client.threads.get_state(thread_id)


async def background_and_join(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"soak": True})
    run = await client.runs.create(thread["thread_id"], "trivial", input={"count": 0})
    await client.runs.join(thread["thread_id"], run["run_id"])


async def search(client: LangGraphClient) -> None:
    await client.threads.search(metadata={"soak": True}, limit=10)


def mix(
    client: LangGraphClient, llm_base_url: str, tokens: int, long_threads: list[str], only: list[str] | None = None
) -> list[tuple[str, Any]]:
    """(kind, coroutine factory) pairs the clients pick from at random, weighted by repetition."""
    choices = [
        ("trivial", lambda: measure.trivial_run(client)),
        ("trivial", lambda: measure.trivial_run(client)),
        ("llm", lambda: measure.llm_run(client, llm_base_url, tokens)),
        ("multi_turn", lambda: multi_turn(client, random.choice(long_threads))),
        ("background", lambda: background_and_join(client)),
        ("search", lambda: search(client)),
    ]
    return [(kind, make) for kind, make in choices if not only or kind in only]


async def client_loop(
    client: LangGraphClient, choices: list[tuple[str, Callable[[], Awaitable[Any]]]], stop: float, traffic: Traffic
) -> None:
    while time.monotonic() < stop:
        kind, make = random.choice(choices)
        try:
            async with asyncio.timeout(measure.RUN_TIMEOUT_S):
                await make()
            traffic.ok(kind)
        except Exception as exc:
            traffic.fail(kind, exc)


async def retained_mib(url: str) -> dict[str, float]:
    """What the server's in-memory broker and thread log retain (`cogni_stream_retained_bytes`), in MiB."""
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for match in RETAINED.finditer(text):
        out[f"{match['store']}_mib"] = round(float(match["value"]) / 1024 / 1024, 1)
    return out


async def sampler(url: str, pid: int, started: float, stop: float, every: float, samples: list[dict[str, Any]]) -> None:
    while True:
        samples.append(
            {
                "t_min": round((time.monotonic() - started) / 60, 2),
                "rss_mib": round((tree_rss_kib(pid) or 0) / 1024, 1),
                "fds": open_fds(pid),
                **await retained_mib(url),
            }
        )
        if time.monotonic() >= stop:
            return
        await asyncio.sleep(min(every, max(0.0, stop - time.monotonic())))


def growth(samples: list[dict[str, Any]], warmup_min: float) -> dict[str, Any]:
    """RSS and fd growth from the first sample at or after warm-up to the last one."""
    after = [s for s in samples if s["t_min"] >= warmup_min] or samples[-1:]
    base, last = after[0], samples[-1]
    rss_pct = round((last["rss_mib"] - base["rss_mib"]) / base["rss_mib"] * 100, 2) if base["rss_mib"] else None
    return {
        "baseline_t_min": base["t_min"],
        "baseline_rss_mib": base["rss_mib"],
        "last_rss_mib": last["rss_mib"],
        "peak_rss_mib": max(s["rss_mib"] for s in samples),
        "rss_growth_pct": rss_pct,
        "baseline_fds": base["fds"],
        "last_fds": last["fds"],
        "fd_growth": (last["fds"] - base["fds"]) if base["fds"] is not None and last["fds"] is not None else None,
        "rss_target_met": rss_pct is not None and rss_pct < RSS_TARGET_PCT,
    }


async def soak(url: str, pid: int, llm_base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    clients = [measure.client_for(url) for _ in range(args.clients)]
    traffic = Traffic()
    samples: list[dict[str, Any]] = []
    try:
        long_threads = [(await clients[0].threads.create())["thread_id"] for _ in range(LONG_THREADS)]
        started = time.monotonic()
        stop = started + args.minutes * 60
        loops = [
            client_loop(c, mix(c, llm_base_url, args.tokens, long_threads, args.only), stop, traffic) for c in clients
        ]
        await asyncio.gather(sampler(url, pid, started, stop, args.sample_seconds, samples), *loops)
        wall = time.monotonic() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    total = sum(traffic.done.values())
    return {
        "samples": samples,
        "growth": growth(samples, args.warmup_minutes),
        "operations": traffic.done,
        "operations_total": total,
        "operations_per_s": round(total / wall, 2) if wall else None,
        "failures": traffic.failures,
        "errors": traffic.errors,
    }


def text_report(full: dict[str, Any]) -> str:
    result, g = full["result"], full["result"]["growth"]
    lines = [f"soak of {full['target']['name']} ({full['target']['details'].get('broker')}), {full['params']}"]
    lines.append("  min   RSS MiB   fds   retained MiB: broker  thread log")
    lines += [
        f"{s['t_min']:5.1f} {s['rss_mib']:9.1f} {s['fds']!s:>5} {s.get('broker_mib', '-')!s:>21} "
        f"{s.get('thread_log_mib', '-')!s:>11}"
        for s in result["samples"]
    ]
    lines.append(
        f"after warm-up ({g['baseline_t_min']} min): RSS {g['baseline_rss_mib']} -> {g['last_rss_mib']} MiB "
        f"({g['rss_growth_pct']}%, target < {RSS_TARGET_PCT}%: {'met' if g['rss_target_met'] else 'NOT met'}), "
        f"fds {g['baseline_fds']} -> {g['last_fds']}"
    )
    lines.append(
        f"operations: {result['operations_total']} ({result['operations_per_s']}/s) {result['operations']}, "
        f"failures: {result['failures']}"
    )
    return "\n".join(lines + [f"  {e}" for e in result["errors"]])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "uv run python -m bench soak " + shlex.join(sys.argv[2:] if argv is None else list(argv))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with ExitStack() as stack:
        llm = stack.enter_context(servers.mock_llm())
        redis_url = args.ours_redis
        if redis_url == "auto":
            redis_url = stack.enter_context(fresh_redis_database())
        elif redis_url:
            redis_url = servers.require_loopback(redis_url)
        name = "ours-redis" if redis_url else "ours"
        target = stack.enter_context(servers.ours(llm, redis_url, name=name))
        assert target.pid is not None
        result = asyncio.run(soak(target.url, target.pid, llm, args))
    full = {
        "date": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": report.machine(),
        "params": {
            "minutes": args.minutes,
            "warmup_minutes": args.warmup_minutes,
            "sample_seconds": args.sample_seconds,
            "clients": args.clients,
            "tokens": args.tokens,
            "only": args.only,
        },
        "target": {"name": target.name, "kind": target.kind, "details": target.details},
        "result": result,
    }
    print(text_report(full))
    path = report.save(full, args.out, prefix="soak")
    print(f"\n[soak] saved {path}")
    return 1 if result["failures"] else 0
