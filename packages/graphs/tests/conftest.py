"""Fixtures for the graphs' tests: the real mock upstream (a process) behind a small recording relay.

The relay forwards every request to `python -m cogni_mock_llm` unchanged and records what the
graphs sent (body and headers), so tests can assert on the wire request. With `imitate_litellm`
switched on it also adds what LiteLLM adds to a response (`x-litellm-call-id`,
`x-litellm-model-group`, `x-litellm-response-cost`, and `usage.cost` in the final stream chunk),
so the capture path is unit-tested without the proxy; the `proxy` test proves it against the real one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cogni_ai_core import GraphRunConfig
from testsupport import ManagedProcess, free_port, serve_asgi

PRICE_PER_TOKEN = 0.000001  # what the relay pretends LiteLLM charges per token


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]
    call_id: str | None = None
    cost: str | None = None


@dataclass
class Relay:
    """Recording relay state shared between the server thread and the test."""

    upstream: str
    requests: list[Recorded] = field(default_factory=list)
    imitate_litellm: bool = False

    def reset(self, *, imitate_litellm: bool = False) -> None:
        self.requests.clear()
        self.imitate_litellm = imitate_litellm


def _cost(usage: dict[str, Any]) -> str:
    return repr((usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)) * PRICE_PER_TOKEN)


def _add_stream_cost(line: bytes, record: Recorded) -> bytes:
    """Give the usage chunk a LiteLLM-style `usage.cost` (stream headers say 0, like LiteLLM's)."""
    if not line.startswith(b"data: {") or b'"usage"' not in line:
        return line
    chunk = json.loads(line[len(b"data: ") :])
    if not chunk.get("usage"):
        return line
    record.cost = _cost(chunk["usage"])
    chunk["usage"]["cost"] = float(record.cost)
    return b"data: " + json.dumps(chunk).encode()


def relay_app(relay: Relay) -> Starlette:
    async def forward(request: Request) -> Response:
        raw = await request.body()
        record = Recorded(body=json.loads(raw), headers={k.lower(): v for k, v in request.headers.items()})
        relay.requests.append(record)
        imitate = relay.imitate_litellm
        extra: dict[str, str] = {}
        if imitate:
            record.call_id = str(uuid.uuid4())
            extra = {"x-litellm-call-id": record.call_id, "x-litellm-model-group": record.body.get("model", "")}
        client = httpx.AsyncClient(timeout=60)
        upstream = await client.send(
            client.build_request("POST", f"{relay.upstream}/v1/chat/completions", content=raw), stream=True
        )
        if not record.body.get("stream") or upstream.status_code >= 400:
            content = await upstream.aread()
            await upstream.aclose()
            await client.aclose()
            if imitate and upstream.status_code < 400:
                record.cost = _cost(json.loads(content).get("usage") or {})
                extra["x-litellm-response-cost"] = record.cost
            media = upstream.headers.get("content-type", "application/json")
            return Response(content, status_code=upstream.status_code, headers=extra, media_type=media)

        async def lines() -> AsyncIterator[bytes]:
            try:
                async for line in upstream.aiter_lines():
                    data = line.encode()
                    yield (_add_stream_cost(data, record) if imitate else data) + b"\n"
            finally:
                await upstream.aclose()
                await client.aclose()

        if imitate:
            extra["x-litellm-response-cost"] = "0.0"
        return StreamingResponse(lines(), headers=extra, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])])


@pytest.fixture(scope="session")
def mock_llm_url() -> Iterator[str]:
    """The mock upstream as a real process: `http://127.0.0.1:PORT`."""
    port = free_port()
    proc = ManagedProcess.python_module("cogni_mock_llm", "--port", str(port), "--hang-seconds", "5", name="mock-llm")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def _relay_server(mock_llm_url: str) -> Iterator[tuple[Relay, str]]:
    relay = Relay(upstream=mock_llm_url)
    with serve_asgi(relay_app(relay), name="llm-relay") as url:
        yield relay, f"{url}/v1"


@pytest.fixture
def relay(_relay_server: tuple[Relay, str], monkeypatch: pytest.MonkeyPatch) -> Relay:
    """A fresh recording relay; LITELLM_BASE_URL points the graphs at it for this test."""
    state, url = _relay_server
    state.reset()
    monkeypatch.setenv("LITELLM_BASE_URL", url)
    monkeypatch.setenv("LITELLM_API_KEY", "sk-test-relay")
    monkeypatch.delenv("LITELLM_TIMEOUT_SECONDS", raising=False)
    return state


@pytest.fixture
def run_config() -> GraphRunConfig:
    return GraphRunConfig(
        model="gpt-4o-mini",
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        attempt=1,
        billing_account_id="acct-graphs",
        virtual_key_id="vk-graphs",
        request_id="req-1",
        trace_id="trace-1",
    )


def runnable_config(run: GraphRunConfig, thread_id: str = "thread-1", **extra: Any) -> dict[str, Any]:
    """`{"configurable": ...}` as a runner passes it: the run config plus LangGraph's thread id."""
    return {"configurable": {**run.to_configurable(), "thread_id": thread_id, **extra}}


@pytest.fixture
def make_config() -> Any:
    return runnable_config
