"""InProcProvider on real LangGraph graphs (test graphs here; the catalog graphs run in the parity test)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import START, MessagesState, StateGraph

from cogni_ai_core import AiEvent, AssistantFinal, RunContext
from cogni_app.db import AppDatabase, postgres_checkpointer, setup_checkpoints
from cogni_app.executors import GraphRunRequest, InProcProvider
from testsupport import fresh_database


class RateLimited(RuntimeError):
    status_code = 429


def build(name: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    async def streamed(state: MessagesState) -> dict[str, Any]:
        model = GenericFakeChatModel(messages=iter([AIMessage(content="Hello brave new world")]))
        reply = await model.ainvoke(state["messages"])
        get_stream_writer()({"type": "usage", "callId": f"call-{uuid.uuid4().hex[:8]}", "costUsd": "0.00002",
                             "inputTokens": 7, "outputTokens": 4, "model": "gpt-4o-mini"})  # fmt: skip
        return {"messages": [reply]}

    async def counting(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"seen {len(state['messages'])}")]}

    async def failing(state: MessagesState) -> dict[str, Any]:
        raise RateLimited("LLM call failed with HTTP 429")

    node = {"streamed": streamed, "counting": counting, "failing": failing}[name]
    builder = StateGraph(MessagesState)
    builder.add_node("agent", node)
    builder.add_edge(START, "agent")
    return builder.compile(checkpointer=checkpointer)


def request(graph: str, message: str, state_key: str = "conv-1") -> GraphRunRequest:
    return GraphRunRequest(
        graph_id=f"langgraph:{graph}",
        model="gpt-4o-mini",
        run=RunContext(run_id=str(uuid.uuid4())),
        billing_account_id="acct-1",
        virtual_key_id="vk-1",
        state_key=state_key,
        input_messages=[{"role": "user", "content": message}],
    )


async def collect(provider: InProcProvider, req: GraphRunRequest) -> list[AiEvent]:
    result = provider.run_graph(req)
    return [event async for event in result.stream]


def final_text(events: list[AiEvent]) -> str:
    [final] = [e for e in events if isinstance(e, AssistantFinal)]
    return final.content


async def test_streams_tokens_then_final_usage_and_done() -> None:
    provider = InProcProvider(compiler=build)
    req = request("streamed", "hi")
    result = provider.run_graph(req)
    events = [event async for event in result.stream]
    types = [e.type for e in events]
    assert types[-3:] == ["assistant_final", "usage_report", "done"]
    assert types.count("text_delta") > 1  # token by token, not one blob
    text = "".join(e.delta for e in events if e.type == "text_delta")
    assert text == "Hello brave new world"
    assert events[-3].content == "Hello brave new world"  # type: ignore[union-attr]
    report = events[-2]
    assert report.fact.executor_type == "inproc" and report.fact.run_id == req.run_id  # type: ignore[union-attr]
    final = await result.final
    assert final.ok and final.usage.calls == 1 and final.provider_thread_id


async def test_multi_turn_keeps_the_conversation_per_account_and_state_key() -> None:
    provider = InProcProvider(compiler=build)
    first = await collect(provider, request("counting", "one"))
    second = await collect(provider, request("counting", "two"))
    other = await collect(provider, request("counting", "one", state_key="conv-2"))
    assert final_text(first) == "seen 1"
    assert final_text(second) == "seen 3"  # user, ai, user
    assert final_text(other) == "seen 1"


async def test_graph_failure_becomes_a_normalised_error_then_done() -> None:
    provider = InProcProvider(compiler=build)
    result = provider.run_graph(request("failing", "x"))
    events = [e.dump() for e in [event async for event in result.stream]]
    assert events == [{"type": "error", "error": "rate_limit"}, {"type": "done"}]
    final = await result.final
    assert not final.ok and final.error == "rate_limit"


async def test_a_conversation_survives_an_app_restart_on_the_postgres_checkpointer() -> None:
    """Issue 12, defect 9: in-process conversations live in the app database, not in the process's memory.
    Each `process` here is its own pool and provider, built the way `cogni-app serve` builds them."""
    with fresh_database("cogni_app_inproc_ckpt") as url:
        await asyncio.gather(setup_checkpoints(url), setup_checkpoints(url))  # two replicas starting together
        for turn, expected in (("one", "seen 1"), ("two", "seen 3"), ("three", "seen 5")):
            db = AppDatabase(url, max_size=2)
            await db.open()
            try:
                provider = InProcProvider(checkpointer=postgres_checkpointer(db), compiler=build)
                assert final_text(await collect(provider, request("counting", turn))) == expected
            finally:
                await db.close()  # the process stops; only the database remembers


async def test_the_accounts_llm_key_reaches_the_graph_but_not_its_checkpoints() -> None:
    """With per-account keys the graph's nodes see the run's key in `configurable` (the LLM factory reads it);
    the Postgres checkpoints of the conversation hold no trace of it."""
    seen: list[Any] = []
    key = "sk-cogni-YWNjdC0x.in-process-secret"

    def keyed(name: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
        async def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
            seen.append((config.get("configurable") or {}).get("__cogni_llm_key"))
            return {"messages": [AIMessage(content="ok")]}

        builder = StateGraph(MessagesState)
        builder.add_node("agent", agent)
        builder.add_edge(START, "agent")
        return builder.compile(checkpointer=checkpointer)

    async def key_of(account: str) -> str | None:
        return key if account == "acct-1" else None

    with fresh_database("cogni_app_inproc_key") as url:
        await setup_checkpoints(url)
        db = AppDatabase(url, min_size=1, max_size=2)
        await db.open()
        try:
            provider = InProcProvider(checkpointer=postgres_checkpointer(db), compiler=keyed, llm_key=key_of)
            events = await collect(provider, request("keyed", "hi"))
            assert events[-1].type == "done" and seen == [key]
            async with db.pool.connection() as conn:
                rows = []
                for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
                    cur = await conn.execute(f"SELECT row_to_json(t)::text AS j FROM {table} t")
                    rows += [r["j"] for r in await cur.fetchall()]
            assert rows and not any(key in row or key.encode().hex() in row for row in rows)
        finally:
            await db.close()
