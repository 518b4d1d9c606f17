"""Issue 12, defect 5: zero, missing and late costs. One rule on every path (a cost of 0 is no cost: a paid
call without one is charged 0 with an alert), and a later real cost of such a call is charged once, as a
correction, whichever path brings it and however many reconcilers race for it. Real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import structlog.testing

from cogni_ai_core import ExecutorType, SourceSystem, UsageFact
from cogni_app.db import AppDatabase
from cogni_app.reconcile import Reconciler, SinkTableSource
from testsupport.spend_log import metric, spend_row, write_spend_rows

from .billing_world import World, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(sink_and_app_db: tuple[str, AppDatabase]) -> AsyncIterator[World]:
    yield await make_world(sink_and_app_db, "acme", is_free_model=lambda m: m == "free-chat")


def stream_fact(w: World, call_id: str, cost: Decimal | None, *, model: str = "gpt-4o-mini") -> UsageFact:
    return UsageFact(
        run_id="run-1", attempt=0, usage_unit_id=call_id, source=SourceSystem.LITELLM,
        executor_type=ExecutorType.LANGGRAPH_SERVER, billing_account_id=w.account, virtual_key_id=w.vkey,
        graph_id="langgraph:chat", model=model, cost_usd=cost,
    )  # fmt: skip


async def fetch(w: World, query: str, *params: Any) -> list[dict[str, Any]]:
    async with w.db.pool.connection() as conn:
        cur = await conn.execute(query, params)
        return [dict(r) for r in await cur.fetchall()]


async def test_a_stream_cost_of_zero_for_a_paid_model_is_under_billing_with_an_alert(world: World) -> None:
    w = world
    alerts_before = metric("cogni_billing_underbilled_calls_total")
    with structlog.testing.capture_logs() as logs:
        zero = await w.ledger.commit_usage_fact(stream_fact(w, "zero", Decimal(0)), provenance="stream")
        missing = await w.ledger.commit_usage_fact(stream_fact(w, "missing", None), provenance="stream")
        free = await w.ledger.commit_usage_fact(
            stream_fact(w, "free", Decimal(0), model="free-chat"), provenance="stream"
        )
    assert (zero.charged_credits, zero.under_billed) == (0, True)  # the same as a missing cost
    assert (missing.charged_credits, missing.under_billed) == (0, True)
    assert (free.charged_credits, free.under_billed) == (0, False)  # a free model costs 0 by design
    assert metric("cogni_billing_underbilled_calls_total") == alerts_before + 2
    alerts = await fetch(
        w, "SELECT r.litellm_call_id FROM billing_alerts a JOIN charge_receipts r ON r.id = a.receipt_id"
    )
    assert sorted(a["litellm_call_id"] for a in alerts) == ["missing", "zero"]
    warnings = [e for e in logs if e["log_level"] == "warning" and "under-billed" in e["event"]]
    assert len(warnings) == 2


async def test_a_late_spend_log_cost_is_charged_once_as_a_correction(world: World) -> None:
    """The stream had no cost; the spend log priced the call later. Before: the stream's receipt blocked it."""
    w = world
    first = await w.ledger.commit_usage_fact(stream_fact(w, "call-a", None), provenance="stream")
    assert (first.charged_credits, first.under_billed) == (0, True)
    write_spend_rows(w.url, spend_row("call-a", w.account, "run-1", spend=Decimal("0.000004")))
    reconciler = Reconciler(w.ledger, SinkTableSource(w.url))
    assert await reconciler.reconcile_run(w.account, "run-1") == 1
    assert await w.ledger.balance(w.account) == 1_000_000 - 80
    assert await reconciler.reconcile_run(w.account, "run-1") == 0
    assert await reconciler.sweep() == 0
    assert await w.ledger.balance(w.account) == 1_000_000 - 80
    corrections = await fetch(w, "SELECT charged_credits, provenance FROM charge_corrections")
    assert corrections == [{"charged_credits": 80, "provenance": "reconcile"}]
    ledger_rows = await fetch(w, "SELECT amount FROM credit_ledger WHERE reason = 'charge_correction'")
    assert ledger_rows == [{"amount": -80}]
    [run] = await w.ledger.activity(w.account)
    assert (run["credits"], run["under_billed"], run["llm_calls"]) == (80, False, 1)


async def test_a_stream_cost_arriving_after_a_zero_spend_log_row_is_a_correction(world: World) -> None:
    """The reconciler charged a spend-log row of 0 first; the stream's real cost comes later."""
    w = world
    write_spend_rows(w.url, spend_row("call-b", w.account, "run-1", spend=Decimal(0)))
    assert await Reconciler(w.ledger, SinkTableSource(w.url)).reconcile_run(w.account, "run-1") == 1
    assert await w.ledger.balance(w.account) == 1_000_000
    late = await w.ledger.commit_usage_fact(stream_fact(w, "call-b", Decimal("0.00001")), provenance="stream")
    assert (late.created, late.corrected_credits, late.under_billed) == (False, 200, False)
    again = await w.ledger.commit_usage_fact(stream_fact(w, "call-b", Decimal("0.00001")), provenance="stream")
    assert again.corrected_credits == 0
    assert await w.ledger.balance(w.account) == 1_000_000 - 200


async def test_two_reconcilers_side_by_side_correct_each_call_exactly_once(world: World) -> None:
    w = world
    calls = [f"late-{i}" for i in range(12)]
    for call_id in calls:
        await w.ledger.commit_usage_fact(stream_fact(w, call_id, None), provenance="stream")
    old = datetime.now(UTC) - timedelta(hours=1)
    write_spend_rows(w.url, *(spend_row(c, w.account, "run-1") for c in calls), inserted_at=old)
    first, second = Reconciler(w.ledger, SinkTableSource(w.url)), Reconciler(w.ledger, SinkTableSource(w.url))
    results = await asyncio.gather(first.sweep(), second.sweep(), first.sweep(), second.sweep())
    assert sum(results) == len(calls)
    assert await w.ledger.balance(w.account) == 1_000_000 - 80 * len(calls)
    with psycopg.connect(w.url) as conn:
        count = conn.execute("SELECT count(*) FROM charge_corrections").fetchone()
    assert count == (len(calls),)
