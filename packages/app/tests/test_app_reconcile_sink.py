"""The reconciler over the sink table (real Postgres, the sink's own DDL and upsert)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_app.billing import Accounts, Ledger, UnknownAccount
from cogni_app.db import AppDatabase
from cogni_app.reconcile import Reconciler, SinkTableSource
from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import UPSERT
from testsupport import fresh_database

pytestmark = pytest.mark.integration


@dataclass
class World:
    url: str
    ledger: Ledger
    reconciler: Reconciler
    account: str
    vkey: str
    other: str


@pytest.fixture
async def world(sink_and_app_db: tuple[str, AppDatabase]) -> AsyncIterator[World]:
    url, db = sink_and_app_db
    accounts = Accounts(db)
    account = await accounts.create_account("acme", initial_credits=1_000_000)
    vkey = await accounts.create_virtual_key(account.id)
    other = await accounts.create_account("other", initial_credits=1_000_000)
    await accounts.create_virtual_key(other.id)
    ledger = Ledger(db, markup=Decimal("2.0"), is_free_model=lambda m: m == "free-chat")
    yield World(url, ledger, Reconciler(ledger, SinkTableSource(url)), account.id, vkey.id, other.id)


def spend_row(call_id: str, account: str | None, run_id: str | None, **overrides: Any) -> SpendRow:
    ended = datetime.now(UTC) - timedelta(seconds=5)
    meta = {
        "run_id": run_id,
        "attempt": 0,
        "graph_id": "langgraph:chat",
        "billing_account_id": account,
        "executor_type": "langgraph_server",
        "trace_id": "t-1",
        "request_id": "r-1",
    }
    values: dict[str, Any] = {
        "call_id": call_id,
        "provider_response_id": f"chatcmpl-{call_id}",
        "end_user": account,
        "spend": Decimal("0.000004"),
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "total_tokens": 20,
        "model": "gpt-4o-mini-2024-07-18",
        "model_group": "gpt-4o-mini",
        "status": "success",
        "error_code": None,
        "spend_logs_metadata": {k: v for k, v in meta.items() if v is not None},
        "request_tags": [],
        "start_time": ended - timedelta(seconds=1),
        "end_time": ended,
    }
    values.update(overrides)
    return SpendRow(**values)


def write(url: str, *rows: SpendRow) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for row in rows:
            conn.execute(UPSERT.encode(), row.values())


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def stream_fact(w: World, call_id: str, run_id: str = "run-1") -> UsageFact:
    return UsageFact(
        run_id=run_id,
        attempt=0,
        usage_unit_id=call_id,
        source=SourceSystem.LITELLM,
        executor_type=ExecutorType.LANGGRAPH_SERVER,
        billing_account_id=w.account,
        virtual_key_id=w.vkey,
        graph_id="langgraph:chat",
        model="gpt-4o-mini",
        cost_usd=Decimal("0.000004"),
    )


async def test_fills_missing_receipt_and_second_pass_adds_nothing(world: World) -> None:
    w = world
    write(w.url, spend_row("call-a", w.account, "run-1"), spend_row("call-b", w.account, "run-1"))
    reconciled_before = metric("cogni_reconciler_calls_reconciled_total")
    lag_before = metric("cogni_billing_lag_seconds_count")
    # The stream billed call-a; call-b's usage event was lost.
    await w.ledger.commit_usage_fact(stream_fact(w, "call-a"), provenance="stream")
    assert await w.ledger.balance(w.account) == 1_000_000 - 80

    assert await w.reconciler.reconcile_run(w.account, "run-1") == 1
    receipts = {r["litellm_call_id"]: r for r in await w.ledger.receipts_for_run("run-1")}
    assert {k: r["provenance"] for k, r in receipts.items()} == {"call-a": "stream", "call-b": "reconcile"}
    b = receipts["call-b"]
    assert (b["charged_credits"], b["response_cost_usd"], b["source_reference"]) == (
        80,
        Decimal("0.000008"),
        "run-1/0/call-b",
    )
    assert (b["input_tokens"], b["output_tokens"], b["model"], b["virtual_key_id"]) == (12, 8, "gpt-4o-mini", w.vkey)
    assert (b["executor_type"], b["graph_id"]) == ("langgraph_server", "langgraph:chat")
    assert await w.ledger.balance(w.account) == 1_000_000 - 160
    assert metric("cogni_reconciler_calls_reconciled_total") == reconciled_before + 1
    assert metric("cogni_billing_lag_seconds_count") == lag_before + 1
    assert metric("cogni_billing_lag_seconds_sum") >= 5  # the call ended 5 s before it was billed

    assert await w.reconciler.reconcile_run(w.account, "run-1") == 0
    assert await w.reconciler.sweep() == 0
    assert len(await w.ledger.receipts_for_run("run-1")) == 2
    assert await w.ledger.balance(w.account) == 1_000_000 - 160


async def test_stream_charge_arriving_after_reconcile_is_not_taken_twice(world: World) -> None:
    w = world
    write(w.url, spend_row("call-a", w.account, "run-1"))
    assert await w.reconciler.reconcile_run(w.account, "run-1") == 1
    late = await w.ledger.commit_usage_fact(stream_fact(w, "call-a"), provenance="stream")
    assert not late.created
    assert await w.ledger.balance(w.account) == 1_000_000 - 80


async def test_other_accounts_and_runs_are_ignored(world: World) -> None:
    w = world
    write(
        w.url,
        spend_row("mine", w.account, "run-1"),
        spend_row("other-account-same-run", w.other, "run-1"),
        spend_row("my-other-run", w.account, "run-2"),
    )
    assert await w.reconciler.reconcile_run(w.account, "run-1") == 1
    assert [r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")] == ["mine"]
    assert await w.ledger.balance(w.other) == 1_000_000
    assert await w.ledger.receipts_for_run("run-2") == []
    with pytest.raises(UnknownAccount):
        await w.reconciler.reconcile_run("no-such-account", "run-1")


async def test_failures_free_models_and_unpriced_calls(world: World) -> None:
    w = world
    write(
        w.url,
        spend_row("failed-free-of-charge", w.account, "run-1", status="failure", spend=Decimal(0), error_code="500"),
        spend_row(
            "failed-but-priced", w.account, "run-1", status="failure", spend=Decimal("0.00001"), error_code="499"
        ),
        spend_row("free", w.account, "run-1", spend=Decimal(0), model="mock-free", model_group="free-chat"),
        spend_row("unpriced", w.account, "run-1", spend=Decimal(0)),
    )
    underbilled_before = metric("cogni_billing_underbilled_calls_total")
    assert await w.reconciler.reconcile_run(w.account, "run-1") == 3
    receipts = {r["litellm_call_id"]: r for r in await w.ledger.receipts_for_run("run-1")}
    assert set(receipts) == {"failed-but-priced", "free", "unpriced"}
    assert receipts["failed-but-priced"]["charged_credits"] == 200
    assert (receipts["free"]["charged_credits"], receipts["free"]["under_billed"]) == (0, False)
    assert (receipts["unpriced"]["charged_credits"], receipts["unpriced"]["under_billed"]) == (0, True)
    assert metric("cogni_billing_underbilled_calls_total") == underbilled_before + 1


async def test_sweep_bills_known_accounts_and_reports_unbilled(world: World) -> None:
    w = world
    old = datetime.now(UTC) - timedelta(hours=3)
    write(
        w.url,
        spend_row("a1", w.account, "run-1"),
        spend_row("o1", w.other, "run-9", spend=Decimal("0.00001")),
        spend_row("stranger", "account-of-another-deployment", "run-x"),
        spend_row("no-run", w.account, None),
        spend_row("hours-old", w.account, "run-0", start_time=old, end_time=old),
    )
    await w.ledger.commit_usage_fact(stream_fact(w, "a1"), provenance="stream")
    write(w.url, spend_row("a2", w.account, "run-1"))
    # Every call after the cursor is billed, however old (the call that ended 3 h ago included).
    assert await w.reconciler.sweep() == 3  # a2, o1 and hours-old
    assert metric("cogni_unbilled_calls") == 3
    assert metric("cogni_unbilled_calls_outstanding") == 0
    assert {r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")} == {"a1", "a2"}
    assert [r["charged_credits"] for r in await w.ledger.receipts_for_run("run-9")] == [200]
    assert [r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-0")] == ["hours-old"]
    assert await w.reconciler.sweep() == 0
    assert metric("cogni_unbilled_calls") == 0


async def test_settle_time_leaves_fresh_calls_to_the_stream(world: World) -> None:
    w = world
    now = datetime.now(UTC)
    write(w.url, spend_row("fresh", w.account, "run-1", start_time=now, end_time=now))
    patient = Reconciler(w.ledger, SinkTableSource(w.url), settle_seconds=60)
    assert await patient.sweep() == 0
    assert await w.reconciler.sweep() == 1


async def test_periodic_sweep_runs_until_cancelled(world: World) -> None:
    w = world
    task = asyncio.create_task(w.reconciler.run_periodically(0.05))
    try:
        write(w.url, spend_row("later", w.account, "run-1"))
        for _ in range(200):
            if await w.ledger.receipts_for_run("run-1"):
                break
            await asyncio.sleep(0.05)
        assert [r["provenance"] for r in await w.ledger.receipts_for_run("run-1")] == ["reconcile"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_missing_sink_table_reads_as_nothing() -> None:
    with fresh_database("cogni_app_reconcile") as url:
        source = SinkTableSource(url)
        assert await source.for_run("acme", "run-1") == []
        assert await source.since(datetime.now(UTC) - timedelta(hours=1)) == []
