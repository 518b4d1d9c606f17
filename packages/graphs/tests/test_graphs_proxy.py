"""Through the real LiteLLM proxy -> mock, with the spend sink: what a graph captured per LLM call
(call id, cost) equals the spend log row LiteLLM wrote, and the row carries the run's attribution."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage

from cogni_ai_core import ExecutorType, GraphRunConfig, LlmCallUsage, normalize_error
from cogni_graphs import compile_graph
from cogni_graphs.llm import LlmCallError
from testsupport.llm_stack import LlmStack, running_llm_stack

pytestmark = [pytest.mark.proxy, pytest.mark.integration]


@pytest.fixture(scope="module")
def stack() -> Iterator[LlmStack]:
    with running_llm_stack() as running:
        yield running


@pytest.fixture
def proxied(stack: LlmStack, monkeypatch: pytest.MonkeyPatch) -> LlmStack:
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    return stack


def _run_config(stack: LlmStack) -> GraphRunConfig:
    return GraphRunConfig(
        model=stack.paid_model,
        run_id=f"run-{uuid.uuid4().hex[:10]}",
        attempt=0,
        billing_account_id=f"acct-{uuid.uuid4().hex[:6]}",
        virtual_key_id="vk-proxy",
        executor_type=ExecutorType.INPROC,
    )


async def _run(graph_name: str, text: str, run: GraphRunConfig, modes: list[str]) -> list[tuple[str, Any]]:
    graph: Any = compile_graph(graph_name)
    config = {"configurable": {**run.to_configurable(), "thread_id": f"thread-{run.run_id}"}}
    return [item async for item in graph.astream({"messages": [HumanMessage(text)]}, config, stream_mode=modes)]


def _assert_matches_sink(stack: LlmStack, run: GraphRunConfig, graph_id: str, event: dict[str, Any]) -> None:
    usage = LlmCallUsage.model_validate(event)
    row = stack.wait_for_spend_row(usage.call_id)
    assert row["call_id"] == usage.call_id
    assert row["status"] == "success"
    assert usage.cost_usd is not None and usage.cost_usd > 0
    assert row["spend"] == usage.cost_usd
    assert row["end_user"] == run.billing_account_id
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.input_tokens, usage.output_tokens)
    assert row["provider_response_id"] == usage.provider_response_id
    assert row["model_group"] == usage.model_group == stack.paid_model
    metadata = row["spend_logs_metadata"]
    assert metadata["run_id"] == run.run_id
    assert metadata["billing_account_id"] == run.billing_account_id
    assert metadata["graph_id"] == graph_id
    assert metadata["thread_id"] == f"thread-{run.run_id}"
    assert metadata["executor_type"] == "inproc"


async def test_chat_call_id_and_header_cost_equal_the_spend_row(proxied: LlmStack) -> None:
    run = _run_config(proxied)
    items = await _run("chat", "Hello through the proxy", run, ["custom", "values"])
    events = [p for m, p in items if m == "custom" and p.get("type") == "usage"]
    assert len(events) == 1
    assert items[-1][1]["messages"][-1].content == "You said: Hello through the proxy"
    _assert_matches_sink(proxied, run, "langgraph:chat", events[0])


async def test_streamed_poet_every_call_matches_its_spend_row(proxied: LlmStack) -> None:
    run = _run_config(proxied)
    items = await _run("poet", "a haiku, call core__get_current_time", run, ["messages", "custom", "values"])
    events = [p for m, p in items if m == "custom" and p.get("type") == "usage"]
    tokens = [p[0].content for m, p in items if m == "messages" and isinstance(p[0], AIMessageChunk)]
    assert len(events) == 2 and events[0]["callId"] != events[1]["callId"]
    assert "".join(str(t) for t in tokens).startswith("The tool core__get_current_time returned:")
    for event in events:
        _assert_matches_sink(proxied, run, "langgraph:poet", event)
    rows = [r for r in proxied.spend_rows() if r["spend_logs_metadata"].get("run_id") == run.run_id]
    assert sorted(r["call_id"] for r in rows) == sorted(e["callId"] for e in events)
    assert sum((r["spend"] for r in rows), Decimal(0)) == sum(Decimal(e["costUsd"]) for e in events)


async def test_rate_limited_call_raises_with_status_and_bills_nothing(proxied: LlmStack) -> None:
    run = _run_config(proxied)
    seen: list[tuple[str, Any]] = []
    with pytest.raises(LlmCallError) as caught:
        graph: Any = compile_graph("chat")
        config = {"configurable": {**run.to_configurable(), "thread_id": "t"}}
        async for item in graph.astream(
            {"messages": [HumanMessage("slow down [mock:status=429]")]}, config, stream_mode=["custom"]
        ):
            seen.append(item)
    assert caught.value.status_code == 429
    assert normalize_error(caught.value) == "rate_limit"
    assert seen == []
    assert caught.value.call_id
    row = proxied.wait_for_spend_row(caught.value.call_id)
    assert row["status"] == "failure" and row["spend"] == 0
    assert row["spend_logs_metadata"]["run_id"] == run.run_id
