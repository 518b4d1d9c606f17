"""The background writer against the real Postgres: inserts, idempotence, outages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from cogni_litellm_sink import SpendLogWriter, SpendRow, row_from_standard_logging_object
from cogni_litellm_sink.callback import SpendSink
from testsupport import ADMIN_URL, database_url, fresh_database

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"


def _row(status: str = "success") -> SpendRow:
    payload = json.loads((DATA / f"standard_logging_object_{status}.json").read_text())
    payload["litellm_call_id"] = str(uuid.uuid4())
    return row_from_standard_logging_object(payload)


def _rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT * FROM litellm_spend_logs ORDER BY inserted_at"))


def test_writer_creates_the_table_and_inserts_the_row() -> None:
    row = _row()
    with fresh_database() as url:
        writer = SpendLogWriter(url)
        assert writer.submit(row)
        assert writer.flush(10)
        writer.close()
        [stored] = _rows(url)
    assert stored["call_id"] == row.call_id
    assert stored["spend"] == Decimal("0.00000195")
    assert stored["end_user"] == "acct-1"
    assert stored["spend_logs_metadata"] == {"run_id": "run-1", "billing_account_id": "acct-1"}
    assert stored["request_tags"] == row.request_tags
    assert stored["start_time"] == row.start_time
    assert stored["inserted_at"] is not None


def test_writing_twice_is_harmless_and_a_late_failure_never_erases_a_success() -> None:
    row = _row()
    with fresh_database() as url:
        first, second = SpendLogWriter(url), SpendLogWriter(url)
        for writer in (first, second):
            writer.submit(row)
            writer.submit(row)
        second.submit(replace(row, status="failure", spend=Decimal(0), error_code="500"))
        assert first.flush(10) and second.flush(10)
        first.close()
        second.close()
        rows = _rows(url)
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["spend"]) == ("success", Decimal("0.00000195"))


def test_a_success_after_a_failure_replaces_it() -> None:
    failed = _row("failure")
    succeeded = replace(_row(), call_id=failed.call_id)
    with fresh_database() as url:
        writer = SpendLogWriter(url)
        writer.submit(failed)
        assert writer.flush(10)
        writer.submit(succeeded)
        assert writer.flush(10)
        writer.close()
        [stored] = _rows(url)
    assert (stored["status"], stored["spend"]) == ("success", Decimal("0.00000195"))


async def test_database_outage_never_raises_and_rows_land_once_it_is_back() -> None:
    name = f"cogni_sink_outage_{uuid.uuid4().hex[:10]}"
    url = database_url(name)  # does not exist yet: every connect fails
    writer = SpendLogWriter(url, max_backoff=0.2, connect_timeout=1)
    sink = SpendSink(writer)
    row = _row()
    kwargs = {"standard_logging_object": json.loads((DATA / "standard_logging_object_success.json").read_text())}
    kwargs["standard_logging_object"]["litellm_call_id"] = row.call_id

    started = time.monotonic()
    await sink.async_log_success_event(kwargs=kwargs, response_obj=None, start_time=None, end_time=None)
    await sink.async_log_failure_event(kwargs={"nothing": "useful"}, response_obj=None, start_time=None, end_time=None)
    assert time.monotonic() - started < 0.05  # the request path only enqueues
    assert not writer.flush(0.5)  # still retrying, nothing raised

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        assert writer.flush(10)
        writer.close()
        [stored] = _rows(url)
        assert stored["call_id"] == row.call_id
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_without_a_database_url_rows_are_dropped_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COGNI_SPEND_SINK_DATABASE_URL", raising=False)
    writer = SpendLogWriter()
    assert writer.submit(_row()) is False
    assert writer.dropped == 1


def test_a_full_queue_drops_instead_of_blocking() -> None:
    writer = SpendLogWriter(database_url("cogni_sink_never_created"), max_queue=2, batch_size=1, max_backoff=0.2)
    started = time.monotonic()
    results = [writer.submit(_row()) for _ in range(6)]
    assert time.monotonic() - started < 0.1
    assert results.count(True) <= 3  # two queued + at most one in the thread's failing batch
    assert writer.dropped == results.count(False) >= 3
    writer.close(timeout=0.5)


def test_concurrent_writers_create_the_table_once() -> None:
    with fresh_database() as url:
        writers = [SpendLogWriter(url) for _ in range(4)]
        threads = [threading.Thread(target=w.submit, args=(_row(),)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(w.flush(10) for w in writers)
        for writer in writers:
            writer.close()
        assert len(_rows(url)) == 4
