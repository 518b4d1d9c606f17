"""One command that measures our server and its peers in the same run.

    uv run python -m bench --start langgraph-dev --start aegra

starts the mock model, then, one target at a time (so they never compete for the CPU), our server
on a fresh Postgres database, and each requested peer from its cached venv; measures each; prints a
table; saves JSON under bench/results/. `--ours URL` and `--peer name=URL` measure servers that are
already running instead (loopback only; they must serve bench/graphs/langgraph.json).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import measure, report, servers
from bench.servers import Target

MEASUREMENTS = ("sequential", "concurrent", "tokens")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="sequential trivial runs measured (200)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured runs before the sequential ones")
    parser.add_argument("--clients", type=int, default=32, help="concurrent SDK clients (32)")
    parser.add_argument("--runs-per-client", type=int, default=10, help="trivial runs per concurrent client (10)")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per mock answer in the tokens test")
    parser.add_argument("--token-runs", type=int, default=5, help="answers streamed in the tokens test")
    parser.add_argument(
        "--only", action="append", choices=MEASUREMENTS, help="run only these measurements (repeatable)"
    )
    parser.add_argument("--ours", metavar="URL", help="measure an already running server instead of starting one")
    parser.add_argument("--no-ours", action="store_true", help="do not measure our server (peers only)")
    parser.add_argument(
        "--ours-redis",
        metavar="URL",
        help="also measure our server with the Redis broker at URL (target 'ours-redis')",
    )
    parser.add_argument(
        "--start", action="append", default=[], choices=sorted(servers.STARTERS), help="start this peer (repeatable)"
    )
    parser.add_argument(
        "--peer", action="append", default=[], metavar="NAME=URL", help="measure a running peer (repeatable)"
    )
    parser.add_argument("--mock-url", metavar="URL", help="an already running mock model base URL (…/v1)")
    parser.add_argument("--reference", default="ours", help="target the ratios compare against (default: ours)")
    parser.add_argument("--out", type=Path, help="JSON output path (default: bench/results/bench-<time>.json)")
    args = parser.parse_args(argv)
    for name in ("runs", "clients", "runs_per_client", "tokens", "token_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def parse_peer(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise ValueError(f"--peer wants NAME=URL, got {value!r}")
    return name, servers.require_loopback(url)


async def measure_target(target: Target, args: argparse.Namespace, llm_base_url: str) -> dict[str, Any]:
    """All requested measurements on one target; a failing measurement is recorded, not fatal."""
    result: dict[str, Any] = {
        "name": target.name,
        "url": target.url,
        "kind": target.kind,
        "details": target.details,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    wanted = args.only or MEASUREMENTS
    steps: dict[str, Callable[[], Any]] = {
        "sequential": lambda: measure.sequential(target.url, args.runs, args.warmup),
        "concurrent": lambda: measure.concurrent(target.url, args.clients, args.runs_per_client),
        "tokens": lambda: measure.token_rate(target.url, llm_base_url, args.tokens, args.token_runs),
    }
    for name in MEASUREMENTS:
        if name not in wanted:
            continue
        print(f"[bench] {target.name}: {name} …", flush=True)
        try:
            result[name] = await steps[name]()
        except Exception as exc:
            traceback.print_exc()
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[bench] {target.name}: {name} -> {short(result[name])}", flush=True)
    return result


def short(section: dict[str, Any]) -> str:
    keys = ("median_ms", "p99_ms", "runs_per_s", "tokens_per_s", "failures", "error")
    return ", ".join(f"{k}={section[k]}" for k in keys if k in section)


def running(target: Target) -> Callable[[str], AbstractContextManager[Target]]:
    """A starter for a server somebody else started: nothing to start or stop."""
    return lambda _llm: nullcontext(target)


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[str], AbstractContextManager[Target]]]]:
    """The targets in measuring order, each as a factory of a context manager yielding it."""
    targets: list[tuple[str, Callable[[str], AbstractContextManager[Target]]]] = []
    if not args.no_ours:
        if args.ours:
            url = servers.require_loopback(args.ours)
            targets.append(("ours", running(Target("ours", url, "running server"))))
        else:
            targets.append(("ours", lambda llm: servers.ours(llm)))
            if args.ours_redis:
                redis_url = servers.require_loopback(args.ours_redis)
                targets.append(("ours-redis", lambda llm: servers.ours(llm, redis_url, name="ours-redis")))
    for name in args.start:
        targets.append((name, servers.STARTERS[name]))
    for value in args.peer:
        name, url = parse_peer(value)
        targets.append((name, running(Target(name, url, "running server"))))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        targets = plan(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not targets:
        print("error: nothing to measure (use --start, --peer, or drop --no-ours)", file=sys.stderr)
        return 2
    started = datetime.now(UTC).isoformat(timespec="seconds")
    command = "uv run python -m bench " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        llm = servers.require_loopback(args.mock_url) if args.mock_url else stack.enter_context(servers.mock_llm())
        for name, starter in targets:
            print(f"[bench] starting {name}", flush=True)
            try:
                with starter(llm) as target:
                    results.append(asyncio.run(measure_target(target, args, llm)))
            except Exception as exc:
                traceback.print_exc()
                results.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
    full = {
        "date": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": report.machine(),
        "params": {
            "runs": args.runs,
            "warmup": args.warmup,
            "clients": args.clients,
            "runs_per_client": args.runs_per_client,
            "tokens": args.tokens,
            "token_runs": args.token_runs,
        },
        "reference": args.reference,
        "results": results,
        "ratios": report.ratios(results, args.reference),
    }
    print()
    print(report.table(full))
    print()
    print(report.markdown(full))
    path = report.save(full, args.out)
    print(f"\n[bench] saved {path}")
    failed = any(r.get("error") or any((r.get(m) or {}).get("error") for m in MEASUREMENTS) for r in results)
    return 1 if failed else 0
