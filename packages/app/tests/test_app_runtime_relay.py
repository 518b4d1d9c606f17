"""The relay against the real ledger (fresh Postgres database): UI fan-out, billing, disconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from cogni_ai_core import (
    AiEvent,
    AssistantFinal,
    Done,
    ExecutorType,
    RunContext,
    SourceSystem,
    TextDelta,
    UsageFact,
    UsageReport,
)
from cogni_app.billing import Accounts, Ledger
from cogni_app.db import AppDatabase, migrate
from cogni_app.executors import GraphFinal, GraphRunRequest, GraphRunResult
from cogni_app.executors.driver import drive
from cogni_app.executors.translate import StreamTranslator
from cogni_app.relay import USAGE_COMMITS, Relay
from testsupport import fresh_database


@pytest.fixture
async def billing() -> AsyncIterator[tuple[Ledger, Accounts]]:
    with fresh_database("cogni_app_relay") as url:
        await migrate(url)
        db = AppDatabase(url, max_size=4)
        await db.open()
        try:
            yield Ledger(db, markup=Decimal("2.0"), is_free_model=lambda _: False), Accounts(db)
        finally:
            await db.close()


def fact(account: str, vkey: str, run_id: str, unit: str, cost: str = "0.00001") -> UsageFact:
    return UsageFact(
        run_id=run_id, usage_unit_id=unit, source=SourceSystem.LITELLM, executor_type=ExecutorType.INPROC,
        billing_account_id=account, virtual_key_id=vkey, graph_id="langgraph:chat", model="gpt-4o-mini",
        cost_usd=Decimal(cost), input_tokens=3, output_tokens=2,
    )  # fmt: skip


def scripted(events: list[AiEvent], *, delay: float = 0.0, explode_after: int | None = None) -> GraphRunResult:
    final: asyncio.Future[GraphFinal] = asyncio.get_running_loop().create_future()

    async def stream() -> AsyncIterator[AiEvent]:
        for index, event in enumerate(events):
            if explode_after is not None and index == explode_after:
                raise RuntimeError("provider bug")
            await asyncio.sleep(delay)
            yield event
        final.set_result(GraphFinal(ok=True, content="ok"))

    return GraphRunResult(stream=stream(), final=final)


class RecordingReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def reconcile_run(self, billing_account_id: str, run_id: str) -> int:
        self.calls.append((billing_account_id, run_id))
        return 0


async def new_account(accounts: Accounts) -> tuple[str, str]:
    account = await accounts.create_account("relay-test", initial_credits=1_000_000)
    vkey = await accounts.create_virtual_key(account.id)
    return account.id, vkey.id


async def test_ui_gets_everything_but_usage_and_billing_commits_each_call(billing: tuple[Ledger, Accounts]) -> None:
    ledger, accounts = billing
    account, vkey = await new_account(accounts)
    run_id = str(uuid.uuid4())
    reconciler = RecordingReconciler()
    relay = Relay(ledger=ledger, reconciler=reconciler, reconcile_delay_seconds=0.05)
    events: list[AiEvent] = [
        TextDelta(delta="Hi"),
        AssistantFinal(content="Hi"),
        UsageReport(fact=fact(account, vkey, run_id, "call-1")),
        UsageReport(fact=fact(account, vkey, run_id, "call-2", cost="0.0000123")),
        Done(),
    ]
    run = relay.start(scripted(events), run_id=run_id, billing_account_id=account, ingress_request_id="req-9")
    ui = [event.type async for event in run.ui_events()]
    assert ui == ["text_delta", "assistant_final", "done"]
    await asyncio.wait_for(run.finished(), 10)
    receipts = await ledger.receipts_for_run(run_id)
    assert sorted(r["litellm_call_id"] for r in receipts) == ["call-1", "call-2"]
    assert {r["provenance"] for r in receipts} == {"stream"}
    assert {r["ingress_request_id"] for r in receipts} == {"req-9"}
    # ceil(0.00001 x 2 x 1e7) + ceil(0.0000123 x 2 x 1e7) = 200 + 246
    assert sum(int(r["charged_credits"]) for r in receipts) == 446
    assert await ledger.balance(account) == 1_000_000 - 446
    assert reconciler.calls == [(account, run_id)]


async def test_client_that_stops_reading_mid_stream_is_still_billed_in_full(billing: tuple[Ledger, Accounts]) -> None:
    ledger, accounts = billing
    account, vkey = await new_account(accounts)
    run_id = str(uuid.uuid4())
    relay = Relay(ledger=ledger, reconciler=None)
    events: list[AiEvent] = [TextDelta(delta=f"t{i} ") for i in range(20)]
    events += [AssistantFinal(content="..."), UsageReport(fact=fact(account, vkey, run_id, "call-long")), Done()]
    run = relay.start(scripted(events, delay=0.01), run_id=run_id, billing_account_id=account)

    async def impatient_client() -> None:
        async for event in run.ui_events():
            assert event.type == "text_delta"
            break  # the browser tab closes after the first token

    await impatient_client()
    assert await ledger.receipts_for_run(run_id) == []  # the run is still going
    await asyncio.wait_for(run.finished(), 10)
    receipts = await ledger.receipts_for_run(run_id)
    assert [r["litellm_call_id"] for r in receipts] == ["call-long"]
    assert relay.in_flight == 0


async def test_a_billing_failure_never_fails_the_users_stream(billing: tuple[Ledger, Accounts]) -> None:
    ledger, _ = billing
    run_id = str(uuid.uuid4())
    before = USAGE_COMMITS.labels(outcome="failed")._value.get()
    relay = Relay(ledger=ledger, reconciler=None)
    events: list[AiEvent] = [
        AssistantFinal(content="fine"),
        UsageReport(fact=fact("no-such-account", "vk", run_id, "call-x")),
        Done(),
    ]
    run = relay.start(scripted(events), run_id=run_id, billing_account_id="no-such-account")
    assert [e.type async for e in run.ui_events()] == ["assistant_final", "done"]
    await asyncio.wait_for(run.finished(), 10)
    assert USAGE_COMMITS.labels(outcome="failed")._value.get() == before + 1


async def test_a_provider_that_breaks_mid_stream_still_ends_the_ui_with_error_and_done(
    billing: tuple[Ledger, Accounts],
) -> None:
    ledger, _ = billing
    relay = Relay(ledger=ledger, reconciler=None)
    events: list[AiEvent] = [TextDelta(delta="a"), TextDelta(delta="b"), Done()]
    run = relay.start(scripted(events, explode_after=1), run_id="r", billing_account_id="a")
    assert [e.dump() async for e in run.ui_events()] == [
        {"type": "text_delta", "delta": "a"},
        {"type": "error", "error": "internal"},
        {"type": "done"},
    ]


async def test_shutdown_drains_runs_in_flight(billing: tuple[Ledger, Accounts]) -> None:
    ledger, accounts = billing
    account, vkey = await new_account(accounts)
    run_id = str(uuid.uuid4())
    relay = Relay(ledger=ledger, reconciler=None)
    events: list[AiEvent] = [TextDelta(delta="x")] * 5
    events += [AssistantFinal(content="x"), UsageReport(fact=fact(account, vkey, run_id, "call-d")), Done()]
    relay.start(scripted(events, delay=0.02), run_id=run_id, billing_account_id=account)
    await relay.aclose(drain_seconds=10)
    assert [r["litellm_call_id"] for r in await ledger.receipts_for_run(run_id)] == ["call-d"]


async def test_a_run_cancelled_past_the_drain_still_bills_the_calls_it_had_made(
    billing: tuple[Ledger, Accounts],
) -> None:
    """The provider holds usage_report events until the run ends; a shutdown that cancels the run after its
    drain must still bill the LLM calls the run had made (through the real driver and translator)."""
    ledger, accounts = billing
    account, vkey = await new_account(accounts)
    run_id = str(uuid.uuid4())
    request = GraphRunRequest(
        graph_id="langgraph:chat", model="gpt-4o-mini", run=RunContext(run_id=run_id, attempt=0),
        billing_account_id=account, virtual_key_id=vkey, state_key="conv-cancel",
        input_messages=[{"role": "user", "content": "hi"}],
    )  # fmt: skip
    made_a_call = asyncio.Event()

    async def parts() -> AsyncIterator[tuple[str, Any]]:
        yield "custom", {"type": "usage", "callId": "call-before-cancel", "model": "gpt-4o-mini", "costUsd": "0.00001"}
        made_a_call.set()
        await asyncio.sleep(3600)  # the graph's second LLM call never finishes
        yield "custom", {}

    result = drive(parts, StreamTranslator(request, executor_type=ExecutorType.INPROC), executor="inproc")
    relay = Relay(ledger=ledger, reconciler=None)
    run = relay.start(result, run_id=run_id, billing_account_id=account)
    await asyncio.wait_for(made_a_call.wait(), 5)
    await relay.aclose(drain_seconds=0.2)
    receipts = await ledger.receipts_for_run(run_id)
    assert [(r["litellm_call_id"], r["charged_credits"]) for r in receipts] == [("call-before-cancel", 200)]
    assert await ledger.balance(account) == 1_000_000 - 200
    assert [e.type async for e in run.ui_events()][-2:] == ["error", "done"]
