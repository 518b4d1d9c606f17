"""Parity: the same graph and prompt through InProcProvider and LangGraphServerProvider.

Real processes: the Agent Server (jwt auth, Postgres), a real LiteLLM proxy with the spend-log sink
and the mock upstream. Both runs go through the relay into the real ledger. They must produce the
same AiEvent sequence (ids and clock readings aside) and the same receipts (count and credits).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from langgraph_sdk import get_client

from cogni_ai_core import AiEvent, RunContext, ToolCallResult, ToolCallStart, derive_thread_id
from cogni_app.billing import Accounts, Ledger
from cogni_app.db import AppDatabase, migrate
from cogni_app.executors import (
    GraphExecutorPort,
    GraphRunRequest,
    GraphRunResult,
    InProcProvider,
    LangGraphServerProvider,
)
from cogni_app.relay import Relay
from cogni_app.service_auth import ServiceTokenMinter
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.integration, pytest.mark.proxy]
SECRET = "parity-" + "s" * 40
AUDIENCE = "cogni-agent-server"
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


@pytest.fixture(scope="module")
def topology() -> Iterator[tuple[LlmStack, str, str]]:
    """(LLM stack, agent server URL, app database URL); the graphs in this process see the same LiteLLM."""
    with (
        running_llm_stack() as stack,
        fresh_database("cogni_parity_srv") as server_db,
        fresh_database("cogni_parity_app") as app_db,
    ):
        saved = dict(os.environ)
        os.environ.update(stack.env())
        port = free_port()
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(port)],
            env={**stack.env(), "LANGGRAPH_DATABASE_URL": server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": AUDIENCE},
            name="agent-server",
        )  # fmt: skip
        try:
            server.wait_http(f"http://127.0.0.1:{port}/ok", timeout=60)
            asyncio.run(migrate(app_db))
            yield stack, f"http://127.0.0.1:{port}", app_db
        finally:
            server.stop()
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
async def billing(topology: tuple[LlmStack, str, str]) -> AsyncIterator[tuple[Ledger, Accounts]]:
    db = AppDatabase(topology[2], max_size=4)
    await db.open()
    try:
        yield Ledger(db, markup=Decimal("2.0"), is_free_model=lambda m: m == "free-chat"), Accounts(db)
    finally:
        await db.close()


def recorded(result: GraphRunResult, into: list[AiEvent]) -> GraphRunResult:
    async def tee() -> AsyncIterator[AiEvent]:
        async for event in result.stream:
            into.append(event)
            yield event

    return GraphRunResult(stream=tee(), final=result.final)


FACT_FIELDS = ("model", "inputTokens", "outputTokens", "costUsd", "source", "graphId")


def normalised(events: list[AiEvent]) -> list[str]:
    """The sequence with run-specific values removed: run ids, call ids, executor type, clock readings."""
    out = []
    for event in events:
        data = event.dump()
        if data["type"] == "usage_report":
            fact = event.fact.dump()  # type: ignore[union-attr]
            data = {"type": "usage_report", **{k: fact.get(k) for k in FACT_FIELDS}}
        out.append(_TIMESTAMP.sub("<ts>", repr(data)))
    return out


def run_request(
    graph: str,
    prompt: str,
    *,
    account: str = "acct-srv",
    vkey: str = "vk-srv",
    state_key: str = "srv-1",
    run: RunContext | None = None,
) -> GraphRunRequest:
    """A one-message run of catalog graph `graph` (a fresh run id unless `run` is given)."""
    return GraphRunRequest(
        graph_id=f"langgraph:{graph}",
        model="gpt-4o-mini",
        run=run or RunContext(run_id=str(uuid.uuid4())),
        billing_account_id=account,
        virtual_key_id=vkey,
        state_key=state_key,
        input_messages=[{"role": "user", "content": prompt}],
    )


async def run_once(
    provider: GraphExecutorPort, ledger: Ledger, accounts: Accounts, graph: str, prompt: str
) -> tuple[list[AiEvent], list[dict[str, Any]]]:
    account = await accounts.create_account(f"parity-{graph}", initial_credits=10_000_000)
    vkey = await accounts.create_virtual_key(account.id)
    run_id = str(uuid.uuid4())
    request = run_request(
        graph,
        prompt,
        account=account.id,
        vkey=vkey.id,
        state_key=f"parity-{uuid.uuid4().hex[:8]}",
        run=RunContext(run_id=run_id, ingress_request_id=str(uuid.uuid4()), trace_id=uuid.uuid4().hex),
    )
    events: list[AiEvent] = []
    relay = Relay(ledger=ledger, reconciler=None)
    run = relay.start(recorded(provider.run_graph(request), events), run_id=run_id, billing_account_id=account.id)
    await asyncio.wait_for(run.finished(), 60)
    return events, await ledger.receipts_for_run(run_id)


@pytest.mark.parametrize(
    ("graph", "prompt", "tool"),
    [
        ("chat", "Tell me something about parity", None),
        ("poet", "call core__get_current_time and then write about the sea", "core__get_current_time"),
    ],
)
async def test_inproc_and_server_give_the_same_events_and_receipts(
    topology: tuple[LlmStack, str, str], billing: tuple[Ledger, Accounts], graph: str, prompt: str, tool: str | None
) -> None:
    ledger, accounts = billing
    server = LangGraphServerProvider(topology[1], tokens=ServiceTokenMinter(SECRET, audience=AUDIENCE))
    try:
        inproc_events, inproc_receipts = await run_once(InProcProvider(), ledger, accounts, graph, prompt)
        server_events, server_receipts = await run_once(server, ledger, accounts, graph, prompt)
    finally:
        await server.aclose()

    assert normalised(inproc_events) == normalised(server_events)
    types = [e.type for e in server_events]
    assert types[-1] == "done" and types.count("assistant_final") == 1
    if tool is not None:
        starts = [e for e in server_events if isinstance(e, ToolCallStart)]
        results = [e for e in server_events if isinstance(e, ToolCallResult)]
        assert [s.tool_name for s in starts] == [tool]
        assert [r.tool_call_id for r in results] == [s.tool_call_id for s in starts]
    llm_calls = types.count("usage_report")
    assert llm_calls == (2 if tool else 1)

    assert len(inproc_receipts) == len(server_receipts) == llm_calls
    assert sorted(r["charged_credits"] for r in inproc_receipts) == sorted(
        r["charged_credits"] for r in server_receipts
    )
    assert all(r["charged_credits"] > 0 for r in server_receipts)
    assert {r["executor_type"] for r in inproc_receipts} | {r["executor_type"] for r in server_receipts} == {
        "inproc",
        "langgraph_server",
    }


async def test_an_upstream_failure_is_the_same_error_on_both_executors(
    topology: tuple[LlmStack, str, str], billing: tuple[Ledger, Accounts]
) -> None:
    ledger, accounts = billing
    server = LangGraphServerProvider(topology[1], tokens=ServiceTokenMinter(SECRET, audience=AUDIENCE))
    prompt = "this one fails [mock:status=429]"
    try:
        inproc_events, _ = await run_once(InProcProvider(), ledger, accounts, "chat", prompt)
        server_events, _ = await run_once(server, ledger, accounts, "chat", prompt)
    finally:
        await server.aclose()
    assert [e.dump() for e in inproc_events] == [e.dump() for e in server_events]
    assert [e.dump() for e in server_events][-2:] == [{"type": "error", "error": "rate_limit"}, {"type": "done"}]


# -- the server provider's own contract, against the same server -------------------------------------------


async def test_server_threads_are_derived_tenant_tagged_and_continue_with_only_new_input(
    topology: tuple[LlmStack, str, str],
) -> None:
    tokens = ServiceTokenMinter(SECRET, audience=AUDIENCE)
    server = LangGraphServerProvider(topology[1], tokens=tokens)
    account, state_key = f"acct-{uuid.uuid4().hex[:6]}", "conv.server"
    try:
        for prompt in ("first", "second"):
            result = server.run_graph(run_request("chat", prompt, account=account, state_key=state_key))
            events = [e async for e in result.stream]
            assert events[-1].type == "done"
            final = await result.final
            assert final.ok and final.provider_run_id
    finally:
        await server.aclose()
    assert final.provider_thread_id == derive_thread_id(account, state_key)
    client = get_client(url=topology[1], api_key=None, headers={"Authorization": f"Bearer {tokens.mint(account)}"})
    try:
        thread = await client.threads.get(final.provider_thread_id)
        state = await client.threads.get_state(final.provider_thread_id)
    finally:
        await client.aclose()
    metadata: dict[str, Any] = dict(thread["metadata"] or {})
    assert metadata["billingAccountId"] == account and metadata["stateKey"] == state_key
    values: Any = state["values"]
    messages = values["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]  # each run sent only its new input


async def test_server_provider_errors_are_normalised(topology: tuple[LlmStack, str, str]) -> None:
    good = LangGraphServerProvider(topology[1], tokens=ServiceTokenMinter(SECRET, audience=AUDIENCE))
    forged = LangGraphServerProvider(topology[1], tokens=ServiceTokenMinter("w" * 40, audience=AUDIENCE))
    try:
        missing = [e.dump() async for e in good.run_graph(run_request("no-such-graph", "x")).stream]
        rejected = [e.dump() async for e in forged.run_graph(run_request("chat", "x")).stream]
    finally:
        await good.aclose()
        await forged.aclose()
    assert missing == [{"type": "error", "error": "not_found"}, {"type": "done"}]
    assert rejected == [{"type": "error", "error": "internal"}, {"type": "done"}]
