"""A call's spend-log row is committed before the client can see the call's cost (through the real proxy).

The sink's table is held under an exclusive lock, so no row can be committed: the client must get
neither the stream's usage chunk nor the non-streaming response until the lock is released, and
the moment it has them the row is there. Before the pre-write, both arrived at once while the row
sat in the background writer's queue (a `kill -9` then lost it).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from openai import OpenAI
from psycopg.rows import dict_row

from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_litellm_sink.schema import DDL, LOCK_KEY, TABLE
from testsupport import free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_mock_llm, spend_rows

pytestmark = [pytest.mark.proxy, pytest.mark.integration]

HOLD_SECONDS = 2.0


@pytest.fixture
def client(llm_stack: LlmStack) -> OpenAI:
    return OpenAI(base_url=f"{llm_stack.litellm_base_url}/v1", api_key=llm_stack.master_key, max_retries=0, timeout=60)


@pytest.fixture
def table_lock(llm_stack: LlmStack) -> Iterator[psycopg.Connection[Any]]:
    """A connection holding the sink table under ACCESS EXCLUSIVE; `.rollback()` releases it."""
    with psycopg.connect(llm_stack.sink_database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(DDL)
    locker = psycopg.connect(llm_stack.sink_database_url)
    locker.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    try:
        yield locker
    finally:
        locker.close()


def _row(stack: LlmStack, call_id: str) -> dict[str, Any] | None:
    with psycopg.connect(stack.sink_database_url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {TABLE} WHERE call_id = %s", (call_id,)).fetchone()


def _headers() -> tuple[dict[str, str], dict[str, str]]:
    metadata = {"run_id": f"run-{uuid.uuid4().hex[:8]}", "billing_account_id": "acct-1"}
    return metadata, {"x-litellm-spend-logs-metadata": json.dumps(metadata)}


def test_stream_usage_chunk_is_released_only_after_its_row_is_committed(
    llm_stack: LlmStack, client: OpenAI, table_lock: psycopg.Connection[Any]
) -> None:
    metadata, headers = _headers()
    seen: dict[str, Any] = {}
    text_arrived, usage_arrived, done = threading.Event(), threading.Event(), threading.Event()

    def stream() -> None:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=llm_stack.paid_model,
                messages=[{"role": "user", "content": "Stream this to me please"}],
                user="acct-1",
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
            )
            seen["call_id"] = raw.headers["x-litellm-call-id"]
            for chunk in raw.parse():
                if any(choice.delta.content for choice in chunk.choices):
                    text_arrived.set()
                if chunk.usage is not None and not usage_arrived.is_set():
                    seen["usage"] = chunk.usage
                    usage_arrived.set()
                    seen["row_then"] = _row(llm_stack, seen["call_id"])  # read the moment the cost is seen
        except Exception as exc:
            seen["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        assert text_arrived.wait(30), f"no text streamed: {seen.get('error')!r}"
        assert not usage_arrived.wait(HOLD_SECONDS), "the client saw the call's cost while its row could not be written"
    finally:
        table_lock.rollback()
    assert done.wait(30) and "error" not in seen, seen.get("error")
    assert usage_arrived.is_set()
    row = seen["row_then"]
    assert row is not None, "no spend-log row when the client had the usage chunk"
    cost = Decimal(str(seen["usage"].model_dump()["cost"]))
    assert cost > 0 and row["spend"] == cost
    assert (row["status"], row["end_user"], row["spend_logs_metadata"]) == ("success", "acct-1", metadata)
    assert row["completion_tokens"] == seen["usage"].completion_tokens
    final = llm_stack.wait_for_spend_row(seen["call_id"])  # the callback's complete row replaced it, still one row
    assert final["spend"] == cost and final["provider_response_id"] == row["provider_response_id"]


def test_response_is_released_only_after_its_row_is_committed(
    llm_stack: LlmStack, client: OpenAI, table_lock: psycopg.Connection[Any]
) -> None:
    metadata, headers = _headers()
    seen: dict[str, Any] = {}
    responded, done = threading.Event(), threading.Event()

    def call() -> None:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=llm_stack.paid_model,
                messages=[{"role": "user", "content": "Hello"}],
                user="acct-1",
                extra_headers=headers,
            )
            seen["call_id"] = raw.headers["x-litellm-call-id"]
            responded.set()
            seen["row_then"] = _row(llm_stack, seen["call_id"])  # read the moment the cost is seen
            seen["cost"] = Decimal(raw.headers["x-litellm-response-cost"])
            seen["completion"] = raw.parse()
        except Exception as exc:
            seen["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    try:
        assert not responded.wait(HOLD_SECONDS), "the client had the response (its cost) while no row could be written"
    finally:
        table_lock.rollback()
    assert done.wait(30) and "error" not in seen, seen.get("error")
    row = seen["row_then"]
    assert row is not None, "no spend-log row when the client had the response"
    assert seen["cost"] > 0 and row["spend"] == seen["cost"]
    assert (row["status"], row["end_user"], row["spend_logs_metadata"]) == ("success", "acct-1", metadata)
    assert row["provider_response_id"] == seen["completion"].id
    assert row["total_tokens"] == seen["completion"].usage.total_tokens


def test_kill_9_right_after_the_usage_chunk_keeps_the_row() -> None:
    """The chaos campaign's case: the proxy dies the moment the client has the cost."""
    with running_mock_llm() as mock_url, fresh_database("cogni_sink") as db_url:
        proxy = LiteLLMProxy(free_port(), mock_url, db_url).start()
        try:
            client = OpenAI(base_url=f"{proxy.base_url}/v1", api_key=proxy.master_key, max_retries=0, timeout=60)
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Stream this to me please"}],
                user="acct-1",
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = None
            for chunk in raw.parse():
                if chunk.usage is not None:
                    usage = chunk.usage
                    assert proxy.process is not None
                    os.killpg(proxy.process.pid, signal.SIGKILL)
                    break
            assert usage is not None
            proxy.process.wait(timeout=15)
        finally:
            proxy.stop()
        rows = spend_rows(db_url)
        assert [r["call_id"] for r in rows] == [raw.headers["x-litellm-call-id"]]
        assert rows[0]["spend"] == Decimal(str(usage.model_dump()["cost"])) > 0
