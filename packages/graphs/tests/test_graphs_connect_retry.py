"""An LLM call retries only what cannot have been billed: opening the connection to LiteLLM.

A proxy restarting (or a rolling deploy) refuses connections for a moment; the call waits for it, within
`LITELLM_CONNECT_RETRIES` (6 by default: 15.5 s of backoff), and is made once. A request that reached the
proxy and was cut before the answer is never sent again: LiteLLM may already have made and billed it.
Real LiteLLM proxy with the spend-log sink, behind a TCP relay that starts listening late.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from cogni_ai_core import ExecutorType, GraphRunConfig, LlmCallUsage
from cogni_graphs import compile_graph
from cogni_graphs.llm import LlmCallError
from testsupport import free_port
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.proxy, pytest.mark.integration]
LATE_SECONDS = 2.0  # the relay's listening socket opens this long after the call started


@pytest.fixture(scope="module")
def stack() -> Iterator[LlmStack]:
    with running_llm_stack() as running:
        yield running


class LateRelay:
    """A TCP relay to LiteLLM on a port that refuses connections until `open()`; counts connections."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)


@contextlib.asynccontextmanager
async def relay_opening_late(stack: LlmStack) -> AsyncIterator[LateRelay]:
    relay = LateRelay(int(stack.litellm_base_url.rsplit(":", 1)[1]))

    async def open_later() -> None:
        await asyncio.sleep(LATE_SECONDS)
        await relay.open()

    opener = asyncio.create_task(open_later())
    try:
        yield relay
    finally:
        opener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opener
        await relay.aclose()


def point_graphs_at(monkeypatch: pytest.MonkeyPatch, stack: LlmStack, port: int, retries: int | None) -> None:
    monkeypatch.setenv("LITELLM_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LITELLM_API_KEY", stack.master_key)
    if retries is not None:
        monkeypatch.setenv("LITELLM_CONNECT_RETRIES", str(retries))


async def chat(stack: LlmStack, text: str) -> tuple[GraphRunConfig, list[tuple[str, Any]]]:
    run = GraphRunConfig(
        model=stack.paid_model,
        run_id=f"run-{uuid.uuid4().hex[:10]}",
        attempt=0,
        billing_account_id=f"acct-{uuid.uuid4().hex[:6]}",
        virtual_key_id="vk-retry",
        executor_type=ExecutorType.INPROC,
    )
    graph: Any = compile_graph("chat")
    config = {"configurable": {**run.to_configurable(), "thread_id": f"thread-{run.run_id}"}}
    items = [item async for item in graph.astream({"messages": [HumanMessage(text)]}, config, stream_mode=["custom"])]
    return run, items


def rows_of(stack: LlmStack, run: GraphRunConfig) -> list[dict[str, Any]]:
    return [r for r in stack.spend_rows() if r["spend_logs_metadata"].get("run_id") == run.run_id]


async def test_a_call_waits_for_litellm_coming_up_late_and_is_made_once(
    stack: LlmStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relay_opening_late(stack) as relay:
        point_graphs_at(monkeypatch, stack, relay.port, retries=None)  # the default budget
        run, items = await chat(stack, "are you there yet")
    usage = [LlmCallUsage.model_validate(p) for _, p in items if p.get("type") == "usage"]
    assert len(usage) == 1 and usage[0].cost_usd
    row = stack.wait_for_spend_row(usage[0].call_id)
    assert row["spend"] == usage[0].cost_usd
    assert [r["call_id"] for r in rows_of(stack, run)] == [usage[0].call_id]  # made (and billed) once
    assert relay.connections == 1


async def test_without_connect_retries_the_same_call_fails(stack: LlmStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every run did before: one refused connection failed it."""
    async with relay_opening_late(stack) as relay:
        point_graphs_at(monkeypatch, stack, relay.port, retries=0)
        with pytest.raises(LlmCallError) as caught:
            await chat(stack, "are you there yet")
    assert caught.value.status_code is None and "cannot reach LiteLLM" in str(caught.value)
    assert relay.connections == 0


async def test_a_request_cut_after_it_was_sent_is_not_sent_again(
    stack: LlmStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer takes the whole request, then drops the connection without answering (a proxy killed mid-call)."""
    requests: list[bytes] = []

    async def take_and_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
        )
        requests.append(head + await reader.readexactly(length))
        writer.transport.abort()  # reset, no response

    server = await asyncio.start_server(take_and_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        point_graphs_at(monkeypatch, stack, port, retries=None)
        with pytest.raises(LlmCallError) as caught:
            await chat(stack, "hello once")
    finally:
        server.close()
    assert caught.value.status_code is None
    assert len(requests) == 1 and b"hello once" in requests[0]
