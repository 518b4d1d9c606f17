"""One command that measures our server, its peers and the floor in the same run.

    uv run python -m bench --start langhost --start aegra011 --start floor
    uv run python -m bench capacity --streams 2000      (idle streams: see bench/capacity.py)
    uv run python -m bench profile                      (py-spy breakdown of a run: see bench/profile.py)
    uv run python -m bench soak --minutes 30            (memory and fds under mixed traffic: bench/soak.py)
    uv run python -m bench phases                       (a trivial run's phases, ours vs floor-http: bench/phases.py)

starts the mock model, then, one target at a time (so they never compete for the CPU), our server
on a fresh Postgres database, each requested peer from its cached venv, and the in-process floor;
measures each; prints a table with every target as a ratio to ours and every target as a ratio to
the floor; saves JSON under bench/results/. `--ours URL` and `--peer name=URL` measure servers that
are already running instead (loopback only; they must serve bench/graphs/langgraph.json).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import floor, floor_http, measure, report, servers
from bench.servers import Target

MEASUREMENTS = ("sequential", "concurrent", "tokens", "thread-stream")
FLOOR = "floor"
FLOOR_HTTP = "floor-http"
Starter = Callable[[str], AbstractContextManager[Target]]


def section(measurement: str) -> str:
    """The JSON key of a measurement ("thread-stream" -> "thread_stream")."""
    return measurement.replace("-", "_")


def start_choices() -> list[str]:
    return sorted([*servers.STARTERS, FLOOR, FLOOR_HTTP])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        epilog="`python -m bench capacity --help`: the idle-streams capacity mode.",
    )
    parser.add_argument("--runs", type=int, default=200, help="sequential trivial runs measured (200)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured runs before the sequential ones")
    parser.add_argument("--clients", type=int, default=32, help="concurrent SDK clients (32)")
    parser.add_argument("--runs-per-client", type=int, default=10, help="trivial runs per concurrent client (10)")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per mock answer in the tokens tests")
    parser.add_argument("--token-runs", type=int, default=5, help="answers streamed in each tokens test")
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
        "--start",
        action="append",
        default=[],
        choices=start_choices(),
        help="start this peer, or the in-process floor (repeatable)",
    )
    parser.add_argument(
        "--floor-saver",
        choices=floor.SAVERS,
        default=floor.SAVERS[0],
        help="the floor's checkpointer: ours (AsyncPostgresSaver without its lock; default) or the stock class",
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
    if len(set(args.start)) != len(args.start):
        parser.error("--start names a target twice")
    return args


def parse_peer(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise ValueError(f"--peer wants NAME=URL, got {value!r}")
    return name, servers.require_loopback(url)


def http_steps(target: Target, args: argparse.Namespace, llm_base_url: str) -> dict[str, Callable[[], Any]]:
    """The measurements of a server, through the SDK over HTTP."""
    return {
        "sequential": lambda: measure.sequential(target.url, args.runs, args.warmup),
        "concurrent": lambda: measure.concurrent(target.url, args.clients, args.runs_per_client),
        "tokens": lambda: measure.token_rate(target.url, llm_base_url, args.tokens, args.token_runs),
        "thread-stream": lambda: measure.thread_stream(target.url, llm_base_url, args.tokens, args.token_runs),
    }


async def not_applicable(note: str) -> dict[str, Any]:
    return {"served": False, "note": note}


def floor_steps(target: Target, args: argparse.Namespace, llm_base_url: str) -> dict[str, Callable[[], Any]]:
    """The same measurements with the graphs in-process (`target.url` is the floor's database)."""
    db, saver = target.url, args.floor_saver
    return {
        "sequential": lambda: floor.sequential(db, args.runs, args.warmup, saver),
        "concurrent": lambda: floor.concurrent(db, args.clients, args.runs_per_client, saver),
        "tokens": lambda: floor.token_rate(db, llm_base_url, args.tokens, args.token_runs, saver),
        "thread-stream": lambda: not_applicable("no server: nothing serves the thread-streaming API"),
    }


async def measure_target(target: Target, args: argparse.Namespace, llm_base_url: str) -> dict[str, Any]:
    """All requested measurements on one target; a failing measurement is recorded, not fatal."""
    result: dict[str, Any] = {
        "name": target.name,
        "url": target.url if target.kind != floor.FLOOR_KIND else "(in-process)",
        "kind": target.kind,
        "details": target.details,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    wanted = args.only or MEASUREMENTS
    make_steps = floor_steps if target.kind == floor.FLOOR_KIND else http_steps
    steps = make_steps(target, args, llm_base_url)
    for name in MEASUREMENTS:
        if name not in wanted:
            continue
        print(f"[bench] {target.name}: {name} …", flush=True)
        try:
            result[section(name)] = await steps[name]()
        except Exception as exc:
            traceback.print_exc()
            result[section(name)] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[bench] {target.name}: {name} -> {short(result[section(name)])}", flush=True)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def short(section: dict[str, Any]) -> str:
    keys = ["median_ms", "p99_ms", "runs_per_s", "tokens_per_s", "ttfe_median_ms", "events_per_s", "failures"]
    keys += ["note", "error"]
    return ", ".join(f"{k}={section[k]}" for k in keys if k in section)


def running(target: Target) -> Starter:
    """A starter for a server somebody else started: nothing to start or stop."""
    return lambda _llm: nullcontext(target)


def plan(args: argparse.Namespace) -> list[tuple[str, Starter]]:
    """The targets in measuring order, each as a factory of a context manager yielding it."""
    targets: list[tuple[str, Starter]] = []
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
        if name == FLOOR:
            targets.append((name, functools.partial(floor.floor, saver=args.floor_saver)))
        elif name == FLOOR_HTTP:
            targets.append((name, floor_http.floor_http))
        else:
            targets.append((name, servers.STARTERS[name]))
    for value in args.peer:
        name, url = parse_peer(value)
        targets.append((name, running(Target(name, url, "running server"))))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["capacity"]:
        from bench import capacity

        return capacity.main(argv[1:])
    if argv[:1] == ["profile"]:
        from bench import profile

        return profile.main(argv[1:])
    if argv[:1] == ["phases"]:
        from bench import phases

        return phases.main(argv[1:])
    if argv[:1] == ["soak"]:
        from bench import soak

        return soak.main(argv[1:])
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
    command = "uv run python -m bench " + shlex.join(argv)
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
            "floor_saver": args.floor_saver,
        },
        "reference": args.reference,
        "results": results,
        "ratios": report.ratios(results, args.reference),
        "floor_ratios": report.ratios(results, FLOOR),
    }
    print()
    print(report.table(full))
    print()
    print(report.markdown(full))
    path = report.save(full, args.out)
    print(f"\n[bench] saved {path}")
    failed = any(r.get("error") or any((r.get(section(m)) or {}).get("error") for m in MEASUREMENTS) for r in results)
    return 1 if failed else 0
