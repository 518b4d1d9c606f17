"""Capacity: N idle streams against one server instance, its memory per stream, and run latency meanwhile.

    uv run python -m bench capacity --streams 2000

starts one server (ours by default, on a fresh database; `--target` picks a peer), measures the
latency of trivial runs while it is idle, then for each transport:

- sse: N threads, one `GET /threads/{id}/stream` each (the thread's stream; it never ends on its own
  and only carries heartbeats while the thread is idle);
- websocket: N threads, one WebSocket on `/threads/{id}/stream/events` each, subscribed to
  `lifecycle` (skipped with a note when the server does not accept the upgrade);

opens the N streams, waits for the server to settle, reads the server's RSS (VmRSS summed over the
process tree the bench started, from /proc), measures the same trivial runs again, checks the
streams are still open, closes them and reads the RSS once more. Reported per transport: RSS idle /
with the streams open / after closing, memory per stream, and run latency idle vs with the streams
open (the targets of issue 9: 2,000 idle streams under 1 GB RSS, a run still starting in under 2x
its idle latency). The runs are timed from a child process, so the bench's own stream readers do
not share the timing client's event loop (they still share the machine's cores).

Every loop is bounded (N streams, fixed run counts, timeouts); loopback only. The open-files limit
is raised to what N streams need (the server inherits it: it is started after the raise).

Modules: this one (arguments, the sequence, main), `capacity_latency` (timed runs in a child
process), `capacity_streams` (opening and draining the idle streams), `capacity_report` (verdict,
text report).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, servers
from bench.capacity_latency import latency_factors, run_latency_elsewhere
from bench.capacity_report import TARGET_STREAMS, TRANSPORTS, mib, summary_line, text_report, verdict
from bench.capacity_streams import create_threads, open_sse_streams, open_websocket_streams, serves_websocket
from bench.procmem import tree_rss_kib
from bench.redisdb import connections_on, fresh_redis_database

SETTLE_S = 3.0
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"  # capacity runs only the trivial graph

__all__ = ["latency_factors", "main", "parse_args", "verdict"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench capacity", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=TARGET_STREAMS, help=f"idle streams to open ({TARGET_STREAMS})")
    parser.add_argument(
        "--transport",
        action="append",
        choices=TRANSPORTS,
        help="only this transport (repeatable; default: both, one after the other)",
    )
    parser.add_argument("--runs", type=int, default=50, help="trivial runs timed idle and with streams open (50)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs before the idle timing (5)")
    parser.add_argument(
        "--target",
        default="ours",
        choices=["ours", *sorted(servers.STARTERS)],
        help="the server to start and load (default: ours)",
    )
    parser.add_argument(
        "--ours-redis",
        metavar="URL",
        help="run ours with the Redis broker at URL (`auto`: an empty database index, flushed afterwards)",
    )
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="seconds to wait after opening the streams")
    parser.add_argument("--out", type=Path, help="JSON output path (default: bench/results/capacity-<time>.json)")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.runs < 1:
        parser.error("--streams and --runs must be at least 1")
    if args.warmup < 0 or args.settle < 0:
        parser.error("--warmup and --settle must be >= 0")
    if args.ours_redis and args.target != "ours":
        parser.error("--ours-redis only applies to --target ours")
    if args.ours_redis and args.ours_redis != "auto":
        args.ours_redis = servers.require_loopback(args.ours_redis)
    return args


def raise_open_files_limit(streams: int) -> dict[str, int]:
    """Raise the soft RLIMIT_NOFILE towards what `streams` client sockets (and the server's) need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = streams * 2 + 1024
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    new_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if new_soft < wanted:
        print(f"[capacity] warning: open-files limit {new_soft} < {wanted} wanted for {streams} streams", flush=True)
    return {"soft_before": soft, "soft": new_soft, "hard": hard, "wanted": wanted}


# -- one transport ---------------------------------------------------------------------------------


async def measure_transport(
    transport: str, url: str, pid: int, args: argparse.Namespace, idle: dict[str, Any], redis_url: str | None = None
) -> dict[str, Any]:
    """Open N idle streams of `transport`, read RSS and latency with them open, close them."""
    started = time.perf_counter()
    thread_ids = await create_threads(url, args.streams)
    created_s = time.perf_counter() - started
    if transport == "websocket":
        served, why = await serves_websocket(url, thread_ids[0])
        if not served:
            return {"served": False, "note": why}
    await asyncio.sleep(1.0)
    rss_before = tree_rss_kib(pid)
    redis_before = connections_on(redis_url) if redis_url else None
    started = time.perf_counter()
    opener = open_websocket_streams if transport == "websocket" else open_sse_streams
    streams = await opener(url, thread_ids)
    open_s = time.perf_counter() - started
    try:
        await asyncio.sleep(args.settle)
        rss_open = tree_rss_kib(pid)
        alive_at_rss = streams.alive()
        redis_open = connections_on(redis_url) if redis_url else None
        loaded = await run_latency_elsewhere(url, args.runs, args.warmup)
        alive = streams.alive()
        rss_open_after_runs = tree_rss_kib(pid)
    finally:
        await streams.close()
    await asyncio.sleep(args.settle)
    rss_closed = tree_rss_kib(pid)
    opened = len(streams.readers)
    per_stream = (
        (rss_open - rss_before) / alive_at_rss if alive_at_rss and rss_open is not None and rss_before else None
    )
    factors = latency_factors(idle, loaded)
    return {
        "served": True,
        "streams_wanted": args.streams,
        "streams_opened": opened,
        "open_failures": streams.failures,
        "open_errors": streams.errors,
        "still_open_at_rss": alive_at_rss,
        "still_open_after_runs": alive,
        "threads_created_s": round(created_s, 2),
        "open_s": round(open_s, 2),
        "bytes_received_per_stream": round(statistics.fmean(streams.bytes_received), 1) if thread_ids else 0,
        "rss_mib": {
            "before": mib(rss_before),
            "open": mib(rss_open),
            "open_after_runs": mib(rss_open_after_runs),
            "after_close": mib(rss_closed),
        },
        "per_stream_kib": round(per_stream, 1) if per_stream is not None else None,
        "redis_connections": {"before": redis_before, "open": redis_open} if redis_url else None,
        "latency_open": loaded,
        "latency_factor": factors,
        "meets": verdict(rss_open, min(opened, alive_at_rss, alive), args.streams, factors),
    }


async def measure_capacity(
    url: str, pid: int, args: argparse.Namespace, redis_url: str | None = None
) -> dict[str, Any]:
    transports = args.transport or list(TRANSPORTS)
    rss_start = tree_rss_kib(pid)
    idle = await run_latency_elsewhere(url, args.runs, args.warmup)
    out: dict[str, Any] = {
        "rss_mib_at_start": mib(rss_start),
        "rss_mib_idle": mib(tree_rss_kib(pid)),
        "latency_idle": idle,
    }
    for transport in transports:
        print(f"[capacity] {transport}: opening {args.streams} idle streams …", flush=True)
        try:
            out[transport] = await measure_transport(transport, url, pid, args, idle, redis_url)
        except Exception as exc:
            traceback.print_exc()
            out[transport] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[capacity] {transport}: {summary_line(out[transport])}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limits = raise_open_files_limit(args.streams)
    command = "uv run python -m bench capacity " + shlex.join(sys.argv[2:] if argv is None else list(argv))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with ExitStack() as stack:
        redis_url = None
        if args.target == "ours":
            redis_url = args.ours_redis
            if redis_url == "auto":
                redis_url = stack.enter_context(fresh_redis_database())
            name = "ours-redis" if redis_url else "ours"
            target = stack.enter_context(servers.ours(UNUSED_LLM_URL, redis_url, name=name))
        else:
            target = stack.enter_context(servers.STARTERS[args.target](UNUSED_LLM_URL))
        if target.pid is None:
            raise RuntimeError("capacity needs the server's process id")
        result = asyncio.run(measure_capacity(target.url, target.pid, args, redis_url))
    full = {
        "date": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": report.machine(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "open_files_limit": limits,
        "params": {
            "streams": args.streams,
            "runs": args.runs,
            "warmup": args.warmup,
            "settle_s": args.settle,
            "transports": args.transport or list(TRANSPORTS),
        },
        "target": {"name": target.name, "kind": target.kind, "details": target.details},
        "result": result,
    }
    print()
    print(text_report(full))
    path = report.save(full, args.out, prefix="capacity")
    print(f"\n[capacity] saved {path}")
    failed = any((result.get(t) or {}).get("error") for t in TRANSPORTS)
    return 1 if failed else 0
