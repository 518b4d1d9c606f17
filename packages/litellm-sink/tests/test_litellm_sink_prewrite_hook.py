"""The streaming hook against the real Postgres: the usage chunk waits for the committed row; a
database that cannot be reached delays nothing past the timeout and fails no call (fail open)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from cogni_litellm_sink.callback import SpendSink
from cogni_litellm_sink.prewrite import PreWriter
from cogni_litellm_sink.writer import SpendLogWriter
from testsupport import database_url, fresh_database

pytestmark = pytest.mark.integration


def _request(call_id: str) -> dict[str, Any]:
    return {
        "litellm_call_id": call_id,
        "model": "gpt-4o-mini",
        "user": "acct-1",
        "metadata": {"spend_logs_metadata": json.dumps({"run_id": "run-1"}), "model_group": "gpt-4o-mini"},
    }


async def _chunks() -> AsyncIterator[dict[str, Any]]:
    yield {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [{"delta": {"content": "Hi"}}]}
    yield {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [{"delta": {}, "finish_reason": "stop"}]}
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "cost": 0.0000123}
    yield {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [], "usage": usage}


def _stored(url: str, call_id: str) -> dict[str, Any] | None:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        try:
            return conn.execute("SELECT * FROM litellm_spend_logs WHERE call_id = %s", (call_id,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return None


async def test_the_usage_chunk_comes_after_its_row_is_committed() -> None:
    call_id = str(uuid.uuid4())
    with fresh_database() as url:
        sink = SpendSink(SpendLogWriter(url), PreWriter(url))
        seen: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        async for chunk in sink.async_post_call_streaming_iterator_hook(None, _chunks(), _request(call_id)):
            seen.append((chunk, _stored(url, call_id)))
        assert [bool(chunk.get("usage")) for chunk, _ in seen] == [False, False, True]
        assert seen[0][1] is None  # text chunks are not held back
        row = seen[2][1]
        assert row is not None
        assert row["spend"] == Decimal("0.0000123")
        assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (5, 2, 7)
        assert (row["end_user"], row["model_group"], row["status"]) == ("acct-1", "gpt-4o-mini", "success")
        assert row["spend_logs_metadata"] == {"run_id": "run-1"}
        assert row["provider_response_id"] == "chatcmpl-1"


async def test_an_unreachable_database_lets_the_stream_through() -> None:
    url = database_url(f"cogni_sink_missing_{uuid.uuid4().hex[:10]}")  # never created: every connect fails
    prewriter = PreWriter(url, timeout=2)
    sink = SpendSink(SpendLogWriter(url), prewriter)
    started = time.monotonic()
    chunks = [c async for c in sink.async_post_call_streaming_iterator_hook(None, _chunks(), _request("c-1"))]
    assert len(chunks) == 3 and chunks[2]["usage"]["cost"] == 0.0000123
    assert time.monotonic() - started < 3
    assert (prewriter.written, prewriter.failed) == (0, 1)
