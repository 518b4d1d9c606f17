"""HTTP edge faults (issue 12): a 500 hides the exception text, a chunked oversize body is 413, a slow
SSE client cannot grow the server's memory, deeply nested JSON is refused up front with a 4xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg_pool import PoolTimeout

from cogni_server.api import errors
from cogni_server.api.sse import SSE_BATCH_EVENTS, SSE_QUEUE_EVENTS, _pumped
from cogni_server.streaming import StreamEvent

from .conftest import KEY_A, Server

LIMIT = 200_000  # COGNI_MAX_BODY_BYTES of the core test server


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}, timeout=30) as c:
        yield c


async def test_unexpected_error_answers_a_generic_500_with_an_error_id(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at db.internal:5432")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    body = r.json()
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert body["error_id"] and body["error_id"] in body["detail"]
    logged = "\n".join(rec.getMessage() + (rec.exc_text or "") for rec in caplog.records)
    assert body["error_id"] in logged  # the operator finds the traceback by the id the client saw


@pytest.mark.parametrize("error", [psycopg.OperationalError("server closed the connection"), PoolTimeout("no conn")])
async def test_a_database_gone_under_a_request_is_a_retryable_503(error: Exception) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/read")
    async def read() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/read")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "database is unavailable" in r.json()["detail"]


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata": {"pad": "'
        for _ in range(LIMIT // 10_000 + 5):
            yield b"x" * 10_000
        yield b'"}}'

    r = await http.post("/threads", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers  # really chunked
    assert r.status_code == 413, r.text
    assert str(LIMIT) in r.json()["detail"]


async def test_chunked_body_under_the_limit_still_works(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata": {"pad": "'
        yield b"x" * 1000
        yield b'"}}'

    r = await http.post("/threads", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


async def test_slow_sse_client_does_not_buffer_without_limit() -> None:
    pulled = 0

    async def source() -> AsyncIterator[StreamEvent]:
        nonlocal pulled
        for i in range(SSE_QUEUE_EVENTS * 20):
            pulled += 1
            yield StreamEvent(f"{i}-0", "values", b"{}")

    batches = _pumped(source(), heartbeat=60.0, idle_stop=None)
    first = await anext(batches)  # the client writes one batch, then stops reading
    assert first
    await asyncio.sleep(0.2)  # plenty of time for an unbounded pump to read the whole source
    # bounded: the queue, the batch taken out of it, the one the pump holds
    assert pulled <= SSE_QUEUE_EVENTS + SSE_BATCH_EVENTS + 2, pulled
    rest = [e for batch in [b async for b in batches] if batch for e in batch]
    ids = [e.id for e in first + rest]  # backpressure, not loss: a reader that resumes gets everything, in order
    assert ids == [f"{i}-0" for i in range(SSE_QUEUE_EVENTS * 20)]


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_json(depth: int) -> str:
    """Raw JSON text nested ``depth`` objects deep (the client's encoder would recurse too far)."""
    return '{"a":' * depth + '"leaf"' + "}" * depth


@pytest.mark.parametrize("depth", [300, 1200])
@pytest.mark.parametrize("where", ["thread.metadata", "run.input", "run.config", "run.metadata", "assistant.config"])
async def test_deeply_nested_json_is_refused_naming_the_limit(http: httpx.AsyncClient, where: str, depth: int) -> None:
    deep = _deep_json(depth)
    json_headers = {"content-type": "application/json"}
    if where == "thread.metadata":
        r = await http.post("/threads", content=f'{{"metadata": {deep}}}', headers=json_headers)
    elif where == "assistant.config":
        body = f'{{"graph_id": "echo", "config": {{"configurable": {deep}}}}}'
        r = await http.post("/assistants", content=body, headers=json_headers)
    else:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        field = where.split(".")[1]
        value = deep if field != "config" else f'{{"configurable": {deep}}}'
        body = f'{{"assistant_id": "echo", "{field}": {value}}}'
        r = await http.post(f"/threads/{tid}/runs/wait", content=body, headers=json_headers)
    assert r.status_code == 422, r.text[:300]
    assert "100" in r.json()["detail"] and "nest" in r.json()["detail"]
    assert (await http.get("/ok")).status_code == 200  # the connection and the server are fine


async def test_moderate_nesting_is_accepted(http: httpx.AsyncClient) -> None:
    r = await http.post("/threads", json={"metadata": {"k": _nested(90)}})
    assert r.status_code == 200, r.text[:300]
    thread = r.json()
    assert thread["metadata"]["k"] == _nested(90)
