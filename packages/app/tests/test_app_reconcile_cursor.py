"""Issue 12, defect 4: no call left unbilled for ever. The sweep reads the spend log from a durable cursor
in the app database, so calls made during an outage of any length are billed once it ends; the cursor never
passes a call whose charge failed, and what is left unbilled is counted. Real Postgres (sink table + ledger).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cogni_ai_core import UsageFact
from cogni_app.billing import CommitResult, Ledger, Provenance
from cogni_app.db import AppDatabase
from cogni_app.reconcile import Reconciler, SinkTableSource
from cogni_app.reconcile.records import Position, SpendLogRecord
from testsupport.spend_log import metric, spend_row, write_spend_rows

from .billing_world import World, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(sink_and_app_db: tuple[str, AppDatabase]) -> AsyncIterator[World]:
    yield await make_world(sink_and_app_db, "acme")


def write_at(url: str, when: datetime, *call_ids: str, account: str, run_id: str = "run-1") -> None:
    """Calls the sink recorded at `when` (inserted then, ended a second before)."""
    rows = (spend_row(c, account, run_id, start_time=when, end_time=when) for c in call_ids)
    write_spend_rows(url, *rows, inserted_at=when)


def cursor_of(url: str) -> tuple[datetime, str] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT position_at, position_id FROM reconcile_cursors").fetchone()
    return (row[0], row[1]) if row else None


class RecordingSource(SinkTableSource):
    """The real sink reader, remembering where each read started."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[Position | None] = []

    async def after(self, position: Position | None, *, limit: int) -> list[SpendLogRecord]:
        self.reads.append(position)
        return await super().after(position, limit=limit)


class FailingOnce(Ledger):
    """The real ledger, failing the first commit of one call (a database error mid-sweep)."""

    def __init__(self, ledger: Ledger, call_id: str) -> None:
        super().__init__(ledger.db, markup=ledger.markup, is_free_model=ledger.is_free_model)
        self.call_id = call_id
        self.failed = False

    async def commit_usage_fact(
        self, fact: UsageFact, *, provenance: Provenance, ingress_request_id: str | None = None
    ) -> CommitResult:
        if fact.usage_unit_id == self.call_id and not self.failed:
            self.failed = True
            raise psycopg.OperationalError("connection lost")
        return await super().commit_usage_fact(fact, provenance=provenance, ingress_request_id=ingress_request_id)


async def test_calls_made_during_a_two_day_outage_are_billed_when_it_ends(world: World) -> None:
    w = world
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    write_at(w.url, two_days_ago, "during-outage-1", "during-outage-2", account=w.account)
    write_at(w.url, datetime.now(UTC) - timedelta(minutes=5), "after-outage", account=w.account)
    reconciler = Reconciler(w.ledger, SinkTableSource(w.url))
    assert await reconciler.sweep() == 3
    receipts = await w.ledger.receipts_for_run("run-1")
    assert sorted(r["litellm_call_id"] for r in receipts) == ["after-outage", "during-outage-1", "during-outage-2"]
    assert await w.ledger.balance(w.account) == 1_000_000 - 3 * 80
    assert metric("cogni_reconciler_cursor_lag_seconds") >= 5 * 60


async def test_the_cursor_is_durable_and_a_restarted_reconciler_reads_on_from_it(world: World) -> None:
    w = world
    old = datetime.now(UTC) - timedelta(hours=5)
    write_at(w.url, old, "c1", "c2", account=w.account)
    assert await Reconciler(w.ledger, SinkTableSource(w.url)).sweep() == 2
    assert cursor_of(w.url) == (old, "c2")
    # A new process: it starts from the committed position, not from the beginning nor from a window.
    write_at(w.url, old + timedelta(minutes=1), "c3", account=w.account)
    source = RecordingSource(w.url)
    assert await Reconciler(w.ledger, source).sweep() == 1
    assert source.reads[0] == (old, "c2")
    assert cursor_of(w.url) == (old + timedelta(minutes=1), "c3")


async def test_the_cursor_stays_behind_recent_rows_so_late_commits_are_read_again(world: World) -> None:
    w = world
    write_at(w.url, datetime.now(UTC) - timedelta(seconds=1), "fresh", account=w.account)
    assert await Reconciler(w.ledger, SinkTableSource(w.url), cursor_margin_seconds=60).sweep() == 1
    position = cursor_of(w.url)
    assert position is not None and position[0] < datetime.now(UTC) - timedelta(seconds=55)
    # A row of a sink transaction that committed late, with an insertion time before "fresh": still read.
    write_at(w.url, datetime.now(UTC) - timedelta(seconds=10), "late-commit", account=w.account)
    assert await Reconciler(w.ledger, SinkTableSource(w.url)).sweep() == 1
    assert {r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")} == {"fresh", "late-commit"}


async def test_a_failed_charge_holds_the_cursor_is_counted_and_is_billed_next_pass(world: World) -> None:
    w = world
    old = datetime.now(UTC) - timedelta(hours=2)
    write_at(w.url, old, "a", account=w.account)
    write_at(w.url, old + timedelta(seconds=1), "b", account=w.account)
    write_at(w.url, old + timedelta(seconds=2), "c", account=w.account)
    flaky = Reconciler(FailingOnce(w.ledger, "b"), SinkTableSource(w.url))
    with pytest.raises(psycopg.OperationalError):
        await flaky.sweep()
    assert metric("cogni_unbilled_calls_outstanding") == 2  # b and c
    assert cursor_of(w.url) == (old, "a")
    assert [r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")] == ["a"]
    assert await flaky.sweep() == 2
    assert metric("cogni_unbilled_calls_outstanding") == 0
    assert sorted(r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")) == ["a", "b", "c"]
    assert await w.ledger.balance(w.account) == 1_000_000 - 3 * 80


async def test_a_long_backlog_is_read_page_by_page(world: World) -> None:
    w = world
    start = datetime.now(UTC) - timedelta(days=1)
    for index in range(7):
        write_at(w.url, start + timedelta(seconds=index), f"call-{index}", account=w.account)
    source = RecordingSource(w.url)
    assert await Reconciler(w.ledger, source, page_size=3).sweep() == 7
    assert len(source.reads) == 3
    assert cursor_of(w.url) == (start + timedelta(seconds=6), "call-6")


async def test_retention_deletes_old_reconciled_rows_and_never_an_unbilled_one(world: World) -> None:
    w = world
    long_ago = datetime.now(UTC) - timedelta(days=40)
    write_at(w.url, long_ago, "old-billed", account=w.account)
    write_at(w.url, datetime.now(UTC) - timedelta(days=2), "recent-billed", account=w.account)
    reconciler = Reconciler(w.ledger, SinkTableSource(w.url), retention_days=30)
    pruned = metric("cogni_spend_log_pruned_rows_total")
    assert await reconciler.sweep() == 2
    assert metric("cogni_spend_log_pruned_rows_total") == pruned + 1
    with psycopg.connect(w.url, autocommit=True) as conn:
        left = {r[0] for r in conn.execute("SELECT call_id FROM litellm_spend_logs")}
    assert left == {"recent-billed"}
    assert {r["litellm_call_id"] for r in await w.ledger.receipts_for_run("run-1")} == {"old-billed", "recent-billed"}


async def test_an_old_row_the_cursor_has_not_reached_is_kept(world: World) -> None:
    w = world
    write_at(w.url, datetime.now(UTC) - timedelta(days=40), "never-reconciled", account=w.account)
    source = SinkTableSource(w.url)
    assert await source.prune(keep_days=30, reconciled_through=(datetime.now(UTC) - timedelta(days=50), "")) == 0
    assert [r.call_id for r in await source.after(None, limit=10)] == ["never-reconciled"]


def test_the_reconcilers_queries_use_the_sinks_indexes(sink_and_app_db: tuple[str, AppDatabase]) -> None:
    url, _ = sink_and_app_db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        by_run = conn.execute(
            "EXPLAIN SELECT * FROM litellm_spend_logs WHERE end_user = 'a' AND spend_logs_metadata->>'run_id' = 'r'"
        ).fetchall()
        after = conn.execute(
            "EXPLAIN SELECT * FROM litellm_spend_logs WHERE (inserted_at, call_id) > (now(), 'x')"
            " ORDER BY inserted_at, call_id LIMIT 500"
        ).fetchall()
    assert "litellm_spend_logs_run_idx" in " ".join(r[0] for r in by_run)
    assert "litellm_spend_logs_position_idx" in " ".join(r[0] for r in after)
