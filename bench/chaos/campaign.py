"""The campaign: batches of chats through the app, one fault kind per batch, then the checks.

    uv run python -m bench.chaos --runs 6 --write-docs
    uv run python -m bench.chaos --runs 3 --fault kill9-runner --fault app-kill

Per batch: a fresh billing account, `--runs` chats (each its own conversation) sent a moment apart
while the fault strikes; then the campaign waits until every server run of the batch is terminal, the
app has nothing in flight and the spend log has stopped growing; counts the calls the app alone has
not billed; asks the app to reconcile every run the spend log names for the account (the operator's
`POST /v1/admin/runs/{id}/reconcile`); and checks the invariants (bench/chaos/checks.py).
Bounded: `--runs` chats per batch, `--rounds` rounds over the faults, `--max-minutes` overall.
Loopback only: every process it starts listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.chaos import checks
from bench.chaos.faults import FAULTS, Batch
from bench.chaos.report import BatchResult, markdown_table, text_table, write_between_markers
from bench.chaos.topology import MARKUP, Topology
from bench.chaos.traffic import plan_chats, run_chats
from cogni_ai_core import derive_thread_id

INITIAL_CREDITS = 10**12
DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="chats per batch (6)")
    parser.add_argument("--fault", action="append", choices=list(FAULTS), help="only these faults (repeatable)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over the faults (1)")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="start no batch after this (30)")
    parser.add_argument("--seed", type=int, default=12, help="random seed (client disconnect points)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.name}")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or args.max_minutes <= 0:
        parser.error("--runs, --rounds and --max-minutes must be positive")
    return args


def new_account(topology: Topology, label: str) -> tuple[str, str]:
    created = topology.admin("POST", "/v1/admin/accounts", json={"name": label, "initialCredits": INITIAL_CREDITS})
    created.raise_for_status()
    account_id = created.json()["id"]
    key = topology.admin("POST", f"/v1/admin/accounts/{account_id}/api-keys", json={})
    key.raise_for_status()
    return account_id, key.json()["apiKey"]


def wait_until(predicate: object, timeout: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except Exception:
            pass
        time.sleep(every)
    return False


def wait_spend_log_quiet(topology: Topology, account_id: str, quiet: float = 2.0, timeout: float = 30.0) -> None:
    """Until the account's spend-log row count has not changed for `quiet` seconds (the sink batches)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(checks.spend_rows(topology.sink_db, account_id))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


def reconcile_account(topology: Topology, account_id: str) -> list[str]:
    """The operator's reconcile of every run the spend log names for the account; failures as notes."""
    run_ids = sorted(
        {str(r["spend_logs_metadata"].get("run_id")) for r in checks.spend_rows(topology.sink_db, account_id)}
        - {"None"}
    )
    failures = []
    for run_id in run_ids:
        answer = topology.admin("POST", f"/v1/admin/runs/{run_id}/reconcile", params={"accountId": account_id})
        if answer.status_code != 200:
            failures.append(f"reconcile {run_id}: {answer.status_code} {answer.text[:100]}")
    return failures


def run_batch(topology: Topology, fault: str, runs: int, rng: random.Random, label: str) -> BatchResult:
    started = time.monotonic()
    account_id, api_key = new_account(topology, label)
    chats = plan_chats(label, runs, rng, disconnects=fault == "client-disconnect")
    thread_of = {c.state_key: derive_thread_id(account_id, c.state_key) for c in chats}
    batch = Batch(fault, account_id, list(thread_of.values()), chats)

    async def strike() -> None:
        try:
            await FAULTS[fault](topology, batch)
        except Exception as exc:
            batch.notes.append(f"fault failed: {type(exc).__name__}: {exc}"[:200])

    async def both() -> None:
        await asyncio.gather(run_chats(topology.app_url, api_key, chats), strike())

    assert topology.balancer is not None
    balancer = topology.balancer
    balancer.dropped = balancer.duplicated = balancer.cut_streams = 0
    asyncio.run(both())
    balancer.set_mode("pass")
    if balancer.dropped or balancer.duplicated:
        batch.notes.append(f"usage events dropped {balancer.dropped}, duplicated {balancer.duplicated}")
    if balancer.cut_streams:
        batch.notes.append(f"{balancer.cut_streams} server responses cut mid-body")
    topology.healthy()
    thread_ids = list(thread_of.values())
    if not wait_until(lambda: checks.nonterminal_runs(topology.server_db, thread_ids) == 0, timeout=120):
        batch.notes.append("runs still not terminal after 120 s")
    if not topology.wait_app_idle(timeout=60):
        batch.notes.append("app still had runs in flight after 60 s")
    wait_spend_log_quiet(topology, account_id)
    markup = Decimal(MARKUP)
    unbilled_before = len(checks.unbilled_calls(topology.sink_db, topology.app_db, account_id, markup))
    batch.notes.extend(reconcile_account(topology, account_id))
    verdict = checks.judge(
        server_db=topology.server_db,
        app_db=topology.app_db,
        sink_db=topology.sink_db,
        account_id=account_id,
        initial_credits=INITIAL_CREDITS,
        markup=markup,
        chats=chats,
        thread_of=thread_of,
    )
    return BatchResult(
        fault=fault,
        verdict=verdict,
        unbilled_before_reconcile=unbilled_before,
        seconds=round(time.monotonic() - started, 1),
        notes=batch.notes,
        client_done=sum(c.saw_done for c in chats),
        client_errors=sum(bool(c.client_error) or c.saw_error for c in chats),
        client_view=[
            f"{c.state_key}: status {c.status} run {c.run_id} events {c.events[-3:]} {c.client_error or ''}"
            for c in chats
            if c.client_error or c.saw_error or not c.acknowledged
        ],
    )


def run_campaign(
    topology: Topology, faults: Sequence[str], runs: int, *, rounds: int = 1, max_minutes: float = 30.0, seed: int = 12
) -> list[BatchResult]:
    """Every fault in `faults` once per round, `runs` chats each, until the time bound."""
    rng = random.Random(seed)
    deadline = time.monotonic() + max_minutes * 60
    results: list[BatchResult] = []
    for round_no in range(rounds):
        for fault in faults:
            if time.monotonic() > deadline:
                print(f"[chaos] time bound reached; {fault} (round {round_no + 1}) not run", flush=True)
                return results
            print(f"[chaos] batch: {fault} x {runs} (round {round_no + 1})", flush=True)
            result = run_batch(topology, fault, runs, rng, f"{fault}-{round_no}")
            v = result.verdict
            print(
                f"[chaos]   {result.seconds}s acked={v.acknowledged}/{v.runs} done={result.client_done} "
                f"lost={v.lost} dup={v.duplicated} unbilled={result.unbilled_before_reconcile}->{v.unbilled} "
                f"orphans={v.orphan_receipts} charged={v.charged} expected={v.expected} calls={v.llm_calls} "
                f"{'PASS' if v.passed else 'FAIL'} {result.notes}",
                flush=True,
            )
            for line in v.evidence[:20]:
                print(f"[chaos]     {line}", flush=True)
            for line in result.client_view[:6]:
                print(f"[chaos]     client: {line}", flush=True)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    faults = args.fault or list(FAULTS)
    started = datetime.now(UTC)
    topology = Topology()
    try:
        print(f"[chaos] starting the topology in {topology.workdir}", flush=True)
        topology.start()
        print(f"[chaos] up: app {topology.app_url}, servers {topology.server_ports}, redis {topology.redis_port}")
        results = run_campaign(
            topology, faults, args.runs, rounds=args.rounds, max_minutes=args.max_minutes, seed=args.seed
        )
    except BaseException:
        print("[chaos] failed; process logs: " + ", ".join(str(p) for p in topology.logs), file=sys.stderr)
        raise
    finally:
        topology.close()
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    print()
    print(text_table(results))
    if args.write_docs:
        command = "uv run python -m bench.chaos " + " ".join(sys.argv[1:] if argv is None else argv)
        header = (
            f"`{command}` on {started:%Y-%m-%d} ({minutes:.1f} min, {len(results)} batches, "
            f"{args.runs} chats per batch):"
        )
        write_between_markers(DOCS, markdown_table(results, header))
        print(f"\n[chaos] table written to {DOCS}")
    return 0 if results and all(r.verdict.passed for r in results) else 1
