"""InProcProvider on real LangGraph graphs (test graphs here; the catalog graphs run in the parity test)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
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
