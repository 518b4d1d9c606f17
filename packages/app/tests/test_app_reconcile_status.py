"""The reconciler's report of its last sweep (what the operator console's reconcile page shows): the window
it read, the calls without a receipt it found, what it billed, and a failure's message. Real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cogni_app.billing import Accounts, Ledger
from cogni_app.db import AppDatabase
from cogni_app.reconcile import Reconciler, SinkTableSource
from testsupport import free_port
from testsupport.spend_log import spend_row, write_spend_rows

pytestmark = pytest.mark.integration


def write_call(url: str, call_id: str, account: str, run_id: str) -> None:
    """One $0.000004 call of `account`'s run, ended two seconds ago, as the sink writes it."""
    ended = datetime.now(UTC) - timedelta(seconds=2)
    write_spend_rows(url, spend_row(call_id, account, run_id, start_time=ended - timedelta(seconds=1), end_time=ended))


async def test_a_sweep_reports_its_window_differences_and_receipts(sink_and_app_db: tuple[str, AppDatabase]) -> None:
    url, db = sink_and_app_db
    accounts = Accounts(db)
    account = (await accounts.create_account("acme", initial_credits=1_000)).id
    await accounts.create_virtual_key(account)
    reconciler = Reconciler(Ledger(db, markup=Decimal("2.0"), is_free_model=lambda _: False), SinkTableSource(url))
    assert reconciler.last_sweep is None
    write_call(url, "call-a", account, "run-a")
    write_call(url, "call-b", account, "run-b")

    before = datetime.now(UTC)
    assert await reconciler.sweep(trigger="operator") == 2
    report = reconciler.last_sweep
    assert report is not None and report.trigger == "operator" and report.error is None
    assert report.window_start is None  # no committed cursor yet: the whole spend log
    assert report.finished_at is not None and report.finished_at >= report.started_at >= before
    assert (report.examined, report.missing, report.created) == (2, 2, 2)
    assert sorted((d["call_id"], d["run_id"], d["billing_account_id"]) for d in report.differences) == [
        ("call-a", "run-a", account), ("call-b", "run-b", account)
    ]  # fmt: skip

    assert await reconciler.sweep() == 0  # billed once: the next sweep finds nothing missing
    assert reconciler.last_sweep is not report and reconciler.last_sweep.trigger == "interval"
    assert (reconciler.last_sweep.differences, reconciler.last_sweep.created) == ([], 0)
    assert reconciler.last_sweep.window_start is not None  # read from the cursor the first sweep committed


async def test_a_failed_sweep_reports_its_error(sink_and_app_db: tuple[str, AppDatabase]) -> None:
    _, db = sink_and_app_db
    dead = SinkTableSource(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", connect_timeout=2)
    reconciler = Reconciler(Ledger(db, markup=Decimal("2.0"), is_free_model=lambda _: False), dead)
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the report names it
        await reconciler.sweep()
    report = reconciler.last_sweep
    assert report is not None and report.finished_at is not None and report.created == 0
    assert report.error and "Error" in report.error.split(":")[0]
