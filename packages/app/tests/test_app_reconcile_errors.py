"""A failing spend log is counted in `cogni_reconciler_errors_total{stage}` and never stops billing:
the periodic sweep survives and bills the missed call once the source is back; the relay's post-run
pass fails quietly. Real Postgres (ledger and sink table); the failing source is a real SinkTableSource
pointed at a port where nothing listens."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from cogni_ai_core import AiEvent, Done, TextDelta
from cogni_app.billing import Accounts, Ledger
from cogni_app.db import AppDatabase
from cogni_app.executors import GraphFinal, GraphRunResult
from cogni_app.reconcile import Reconciler, SinkTableSource
from cogni_app.relay import Relay
from testsupport.spend_log import spend_row, write_spend_rows

pytestmark = pytest.mark.integration


@dataclass
class World:
    url: str
    ledger: Ledger
    account: str


@pytest.fixture
async def world(sink_and_app_db: tuple[str, AppDatabase]) -> AsyncIterator[World]:
    url, db = sink_and_app_db
    accounts = Accounts(db)
    account = await accounts.create_account("acme", initial_credits=1_000_000)
    await accounts.create_virtual_key(account.id)
    yield World(url, Ledger(db, markup=Decimal("2.0"), is_free_model=lambda _: False), account.id)


def errors(stage: str) -> float:
    return REGISTRY.get_sample_value("cogni_reconciler_errors_total", {"stage": stage}) or 0.0


def unreachable_source() -> SinkTableSource:
    """Port 1 on loopback: nothing listens there, ever (a "free" port could be taken meanwhile by another
    test's server, which once held a connection open until the test timed out)."""
    return SinkTableSource("postgresql://postgres@127.0.0.1:1/nowhere", connect_timeout=2)


def write_call(url: str, call_id: str, account: str, run_id: str) -> None:
    """One $0.000004 call of `account`'s run, ended two seconds ago, as the sink writes it."""
    ended = datetime.now(UTC) - timedelta(seconds=2)
    write_spend_rows(url, spend_row(call_id, account, run_id, start_time=ended - timedelta(seconds=1), end_time=ended))


async def wait_until(check: Callable[[], Awaitable[bool]], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_both_stages_are_exported_before_any_error() -> None:
    """An alert on `increase(...)` needs the series to exist at 0 before the first failure."""
    assert REGISTRY.get_sample_value("cogni_reconciler_errors_total", {"stage": "sweep"}) is not None
    assert REGISTRY.get_sample_value("cogni_reconciler_errors_total", {"stage": "after_run"}) is not None


async def test_periodic_sweep_counts_failures_keeps_running_and_bills_once_the_source_is_back(world: World) -> None:
    w = world
    write_call(w.url, "missed-call", w.account, "run-1")  # the stream never billed it
    reconciler = Reconciler(w.ledger, unreachable_source())
    before = errors("sweep")
    loop = asyncio.create_task(reconciler.run_periodically(0.05))
    try:

        async def failed_three_times() -> bool:
            assert not loop.done(), "the periodic loop died"
            return errors("sweep") >= before + 3

        await wait_until(failed_three_times)
        assert not loop.done()
        assert await w.ledger.receipts_for_run("run-1") == []

        reconciler.source = SinkTableSource(w.url)  # the spend log is reachable again
        failed_so_far = errors("sweep")

        async def billed() -> bool:
            assert not loop.done(), "the periodic loop died"
            return len(await w.ledger.receipts_for_run("run-1")) == 1

        await wait_until(billed)
        receipt = (await w.ledger.receipts_for_run("run-1"))[0]
        assert (receipt["litellm_call_id"], receipt["provenance"]) == ("missed-call", "reconcile")
        await asyncio.sleep(0.2)  # a few more healthy passes: no new errors, no double charge
        assert errors("sweep") == failed_so_far
        assert len(await w.ledger.receipts_for_run("run-1")) == 1
        assert await w.ledger.balance(w.account) == 1_000_000 - 80
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert loop.cancelled()  # only cancellation ends the loop


async def test_failed_post_run_reconcile_is_counted_and_the_user_still_gets_the_run(world: World) -> None:
    w = world
    before_after_run, before_sweep = errors("after_run"), errors("sweep")
    relay = Relay(  # no retry: this is about the pass that fails for good
        ledger=w.ledger,
        reconciler=Reconciler(w.ledger, unreachable_source()),
        reconcile_delay_seconds=0,
        commit_retry_seconds=0,
    )
    final: asyncio.Future[GraphFinal] = asyncio.get_running_loop().create_future()

    async def stream() -> AsyncIterator[AiEvent]:
        yield TextDelta(delta="Hi")
        yield Done()
        final.set_result(GraphFinal(ok=True, content="Hi"))

    run = relay.start(
        GraphRunResult(stream=stream(), final=final), run_id=str(uuid.uuid4()), billing_account_id=w.account
    )
    assert [event.type async for event in run.ui_events()] == ["text_delta", "done"]
    await asyncio.wait_for(run.finished(), 10)  # the failed reconcile does not raise out of the run
    assert errors("after_run") == before_after_run + 1
    assert errors("sweep") == before_sweep
    assert relay.in_flight == 0
