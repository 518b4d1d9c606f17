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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bench import measure, report, servers
from bench.measure import RunFailed, client_for
from bench.procmem import tree_rss_kib
from bench.redisdb import fresh_redis_database
from bench.stats import ratio, summary

TRANSPORTS = ("sse", "websocket")
OPEN_CONCURRENCY = 64  # streams being opened at once
OPEN_TIMEOUT_S = 30.0
SETTLE_S = 3.0
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"  # capacity runs only the trivial graph
TARGET_STREAMS = 2000
TARGET_RSS_BYTES = 1_000_000_000  # "1 GB"
TARGET_LATENCY_FACTOR = 2.0


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


# -- run latency ---------------------------------------------------------------------------------


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
    "from bench.capacity import run_latency\n"
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


# -- idle streams --------------------------------------------------------------------------------


@dataclass
class OpenStreams:
    """The streams that opened, their reader tasks, and why the others did not."""

    transport: str
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    bytes_received: list[int] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if len(self.errors) < 5:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def alive(self) -> int:
        return sum(1 for task in self.readers if not task.done())

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        for closer in self.closers:
            with contextlib.suppress(Exception):
                await closer()


async def create_threads(url: str, count: int) -> list[str]:
    """`count` new threads, created OPEN_CONCURRENCY at a time."""
    ids: list[str] = []
    async with client_for(url) as client:
        for offset in range(0, count, OPEN_CONCURRENCY):
            batch = min(OPEN_CONCURRENCY, count - offset)
            threads = await asyncio.gather(*(client.threads.create() for _ in range(batch)))
            ids += [t["thread_id"] for t in threads]
    return ids


async def _drain(reader: asyncio.StreamReader, counter: list[int], index: int) -> None:
    """Read (and discard) whatever an idle stream sends, heartbeats mostly, until it ends."""
    while chunk := await reader.read(65536):
        counter[index] += len(chunk)


async def open_sse(host: str, port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 GET of an SSE route; returns once the 200 response headers are in."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream", "Cache-Control: no-store"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = (await reader.readline()).decode("latin-1").strip()
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "200":
            raise RuntimeError(f"GET {path} answered {status_line!r}")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def open_sse_streams(url: str, thread_ids: list[str]) -> OpenStreams:
    """One `GET /threads/{id}/stream` per thread, OPEN_CONCURRENCY opening at a time."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    streams = OpenStreams("sse", bytes_received=[0] * len(thread_ids))
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int, thread_id: str) -> None:
        async with semaphore:
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_S):
                    reader, writer = await open_sse(host, port, f"/threads/{thread_id}/stream")
            except (OSError, RuntimeError, TimeoutError) as exc:
                streams.fail(exc)
                return
        streams.readers.append(asyncio.create_task(_drain(reader, streams.bytes_received, index)))
        streams.closers.append(_closer(writer))

    await asyncio.gather(*(one(i, t) for i, t in enumerate(thread_ids)))
    return streams


def _closer(writer: asyncio.StreamWriter) -> Any:
    async def close() -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    return close


def ws_url(url: str, thread_id: str) -> str:
    split = urlsplit(url)
    scheme = "wss" if split.scheme == "https" else "ws"
    return f"{scheme}://{split.netloc}/threads/{thread_id}/stream/events"


SUBSCRIBE = '{"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}'


async def open_websocket(url: str, thread_id: str) -> ClientConnection:
    """A WebSocket on the thread's event stream, subscribed to `lifecycle` (as the SDK subscribes)."""
    ws = await connect(ws_url(url, thread_id), ping_interval=20.0, ping_timeout=20.0, open_timeout=OPEN_TIMEOUT_S)
    try:
        await ws.send(SUBSCRIBE)
        await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S)  # the command's reply
    except BaseException:
        await ws.close()
        raise
    return ws


async def serves_websocket(url: str, thread_id: str) -> tuple[bool, str]:
    """Whether the server accepts the WebSocket upgrade on `/threads/{id}/stream/events`."""
    try:
        ws = await open_websocket(url, thread_id)
    except InvalidStatus as exc:
        return False, f"WebSocket upgrade on /threads/{{id}}/stream/events answered {exc.response.status_code}"
    except (OSError, TimeoutError) as exc:
        return False, f"WebSocket upgrade failed: {type(exc).__name__}: {exc}"
    await ws.close()
    return True, "101"


async def _drain_ws(ws: ClientConnection, counter: list[int], index: int) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            counter[index] += len(message)


async def open_websocket_streams(url: str, thread_ids: list[str]) -> OpenStreams:
    streams = OpenStreams("websocket", bytes_received=[0] * len(thread_ids))
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int, thread_id: str) -> None:
        async with semaphore:
            try:
                ws = await open_websocket(url, thread_id)
            except (OSError, TimeoutError, InvalidStatus, RuntimeError) as exc:
                streams.fail(exc)
                return
        streams.readers.append(asyncio.create_task(_drain_ws(ws, streams.bytes_received, index)))
        streams.closers.append(ws.close)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(thread_ids)))
    return streams


# -- one transport ---------------------------------------------------------------------------------


def mib(kib: int | None) -> float | None:
    return round(kib / 1024, 1) if kib is not None else None


async def measure_transport(
    transport: str, url: str, pid: int, args: argparse.Namespace, idle: dict[str, Any]
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
    started = time.perf_counter()
    opener = open_websocket_streams if transport == "websocket" else open_sse_streams
    streams = await opener(url, thread_ids)
    open_s = time.perf_counter() - started
    try:
        await asyncio.sleep(args.settle)
        rss_open = tree_rss_kib(pid)
        alive_at_rss = streams.alive()
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
        "latency_open": loaded,
        "latency_factor": factors,
        "meets": verdict(rss_open, min(opened, alive_at_rss, alive), args.streams, factors),
    }


def verdict(
    rss_open_kib: int | None, open_throughout: int, wanted: int, factors: dict[str, float | None]
) -> dict[str, bool | None]:
    """The issue-9 targets: every stream open (and still open after the runs), RSS < 1 GB with them
    open, run start < 2x idle."""
    start = factors.get("start_median")
    return {
        "all_streams_open": open_throughout == wanted,
        "rss_under_1gb": rss_open_kib * 1024 < TARGET_RSS_BYTES if rss_open_kib is not None else None,
        "start_under_2x_idle": start < TARGET_LATENCY_FACTOR if start is not None else None,
    }


async def measure_capacity(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
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
            out[transport] = await measure_transport(transport, url, pid, args, idle)
        except Exception as exc:
            traceback.print_exc()
            out[transport] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[capacity] {transport}: {summary_line(out[transport])}", flush=True)
    return out


def summary_line(section: dict[str, Any]) -> str:
    if section.get("error"):
        return f"error: {section['error']}"
    if not section.get("served", True):
        return f"n/a ({section.get('note')})"
    rss = section["rss_mib"]
    factor = section["latency_factor"]
    return (
        f"{section['streams_opened']}/{section['streams_wanted']} opened ({section['open_failures']} failed), "
        f"{section['still_open_at_rss']} still open at the RSS reading, "
        f"{section['still_open_after_runs']} after the runs; "
        f"RSS {rss['before']} -> {rss['open']} MiB ({section['per_stream_kib']} KiB/stream), "
        f"run start median x{factor['start_median']}, run median x{factor['run_median']} vs idle"
    )


def text_report(full: dict[str, Any]) -> str:
    result = full["result"]
    idle = result.get("latency_idle") or {}
    lines = [
        f"capacity of {full['target']['name']} ({full['target']['kind']}), {full['params']['streams']} streams",
        f"idle: RSS {result.get('rss_mib_idle')} MiB; run start median {idle.get('start', {}).get('median_ms')} ms"
        f" (p99 {idle.get('start', {}).get('p99_ms')}), whole run median {idle.get('run', {}).get('median_ms')} ms",
    ]
    for transport in TRANSPORTS:
        if transport in result:
            lines.append(f"{transport}: {summary_line(result[transport])}")
            section = result[transport]
            if section.get("served") and section.get("latency_open"):
                lat = section["latency_open"]
                lines.append(
                    f"  with streams open: run start median {lat.get('start', {}).get('median_ms')} ms"
                    f" (p99 {lat.get('start', {}).get('p99_ms')}), whole run median"
                    f" {lat.get('run', {}).get('median_ms')} ms; targets: {section['meets']}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limits = raise_open_files_limit(args.streams)
    command = "uv run python -m bench capacity " + shlex.join(sys.argv[2:] if argv is None else list(argv))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with ExitStack() as stack:
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
        result = asyncio.run(measure_capacity(target.url, target.pid, args))
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
