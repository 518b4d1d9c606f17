"""The LLM factory: attribution on every request, per-call usage capture, errors that normalise."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from cogni_ai_core import (
    LLM_KEY_CONFIGURABLE,
    AiExecutionError,
    ExecutorType,
    GraphRunConfig,
    LlmCallUsage,
    normalize_error,
)
from cogni_graphs import compile_graph
from cogni_graphs.llm import LlmCallError


async def _run(graph_name: str, text: str, config: dict[str, Any], modes: list[str]) -> list[tuple[str, Any]]:
    graph: Any = compile_graph(graph_name)
    return [item async for item in graph.astream({"messages": [HumanMessage(text)]}, config, stream_mode=modes)]


def _usage_events(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [payload for mode, payload in items if mode == "custom" and payload.get("type") == "usage"]


async def test_request_carries_end_user_spend_metadata_and_key(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    run = run_config.model_copy(update={"executor_type": ExecutorType.INPROC})
    await compile_graph("chat").ainvoke({"messages": [HumanMessage("hi")]}, make_config(run, thread_id="th-42"))
    (request,) = relay.requests
    assert request.body["user"] == "acct-graphs"
    assert request.headers["authorization"] == "Bearer sk-test-relay"
    assert json.loads(request.headers["x-litellm-spend-logs-metadata"]) == {
        "run_id": run.run_id,
        "attempt": 1,
        "graph_id": "langgraph:chat",
        "billing_account_id": "acct-graphs",
        "virtual_key_id": "vk-graphs",
        "thread_id": "th-42",
        "request_id": "req-1",
        "trace_id": "trace-1",
        "executor_type": "inproc",
    }


async def test_node_scoped_model_override_reaches_only_that_node(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    override = make_config(run_config, poet__model="mock-chat")
    await compile_graph("poet").ainvoke({"messages": [HumanMessage("call core__get_current_time")]}, override)
    assert [r.body["model"] for r in relay.requests] == ["mock-chat", "mock-chat"]

    relay.requests.clear()
    await compile_graph("chat").ainvoke({"messages": [HumanMessage("hi")]}, override)
    assert [r.body["model"] for r in relay.requests] == ["gpt-4o-mini"]


async def test_non_streaming_call_emits_usage_with_litellm_call_id_and_header_cost(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    relay.reset(imitate_litellm=True)
    items = await _run("chat", "count my tokens", make_config(run_config), ["custom", "values"])
    (event,) = _usage_events(items)
    (request,) = relay.requests
    usage = LlmCallUsage.model_validate(event)
    assert usage.call_id == request.call_id
    assert usage.cost_usd == Decimal(str(request.cost)) > 0
    assert (usage.model, usage.model_group, usage.node) == ("gpt-4o-mini", "gpt-4o-mini", "chat")
    assert usage.output_tokens == 5 and usage.input_tokens and usage.input_tokens > 3
    assert usage.provider_response_id and usage.provider_response_id.startswith("chatcmpl-")
    final = items[-1][1]["messages"][-1]
    assert final.response_metadata["litellm"] == event  # survives in state
    fact = usage.to_usage_fact(
        run_id=run_config.run_id,
        attempt=1,
        executor_type=ExecutorType.INPROC,
        billing_account_id="acct-graphs",
        virtual_key_id="vk-graphs",
        graph_id="langgraph:chat",
    )
    assert fact.usage_unit_id == request.call_id


async def test_streaming_calls_each_emit_usage_with_the_final_chunk_cost(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    relay.reset(imitate_litellm=True)
    items = await _run("poet", "call core__get_current_time", make_config(run_config), ["messages", "custom", "values"])
    events = _usage_events(items)
    assert [e["callId"] for e in events] == [r.call_id for r in relay.requests]
    assert len({e["callId"] for e in events}) == 2
    assert [Decimal(e["costUsd"]) for e in events] == [Decimal(r.cost) for r in relay.requests]
    assert all(e["node"] == "poet" for e in events)
    assert all(r.body["stream"] for r in relay.requests)
    final_state = next(p for m, p in reversed(items) if m == "values")
    ai_messages = [m for m in final_state["messages"] if isinstance(m, AIMessage)]
    assert [m.response_metadata["litellm"]["callId"] for m in ai_messages] == [e["callId"] for e in events]
    assert ai_messages[-1].usage_metadata is not None and ai_messages[-1].usage_metadata["output_tokens"] > 0


async def test_without_litellm_call_id_no_usage_is_emitted(
    relay: Any, run_config: GraphRunConfig, make_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cogni_graphs.llm.capture"):
        items = await _run("chat", "hi", make_config(run_config), ["custom", "values"])
    assert _usage_events(items) == []
    assert "litellm" not in items[-1][1]["messages"][-1].response_metadata
    assert "no x-litellm-call-id header" in caplog.text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit"), (500, "internal"), (400, "internal")])
async def test_upstream_errors_propagate_with_status_and_emit_no_usage(
    relay: Any, run_config: GraphRunConfig, make_config: Any, status: int, code: str, stream: bool
) -> None:
    relay.reset(imitate_litellm=True)
    modes = ["messages", "custom"] if stream else ["custom"]
    seen: list[tuple[str, Any]] = []
    with pytest.raises(LlmCallError) as caught:
        graph: Any = compile_graph("chat")
        async for item in graph.astream(
            {"messages": [HumanMessage(f"fail [mock:status={status}]")]}, make_config(run_config), stream_mode=modes
        ):
            seen.append(item)
    assert caught.value.status_code == status
    assert caught.value.call_id == relay.requests[0].call_id
    assert normalize_error(caught.value) == code
    assert _usage_events(seen) == []


async def test_timeout_is_configurable_and_maps_to_timeout(
    relay: Any, run_config: GraphRunConfig, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_TIMEOUT_SECONDS", "0.5")
    started = time.monotonic()
    with pytest.raises(LlmCallError) as caught:
        await compile_graph("chat").ainvoke({"messages": [HumanMessage("wait [mock:hang=2]")]}, make_config(run_config))
    assert time.monotonic() - started < 1.8
    assert caught.value.status_code == 408
    assert normalize_error(caught.value) == "timeout"


async def test_missing_run_config_is_an_invalid_request_naming_the_keys(relay: Any) -> None:
    with pytest.raises(AiExecutionError) as caught:
        await compile_graph("chat").ainvoke({"messages": [HumanMessage("hi")]}, {"configurable": {"model": "x"}})
    assert caught.value.code == "invalid_request"
    assert "billingAccountId" in str(caught.value) or "billing_account_id" in str(caught.value)
    assert relay.requests == []


async def test_a_runs_own_llm_key_replaces_the_shared_key_for_that_run_only(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    graph: Any = compile_graph("chat")
    with_key = make_config(run_config)
    with_key["configurable"][LLM_KEY_CONFIGURABLE] = "sk-cogni-YWNjdC1ncmFwaHM.own"
    await graph.ainvoke({"messages": [HumanMessage("hi")]}, with_key)
    await graph.ainvoke({"messages": [HumanMessage("hi")]}, make_config(run_config))
    assert [r.headers["authorization"] for r in relay.requests] == [
        "Bearer sk-cogni-YWNjdC1ncmFwaHM.own",
        "Bearer sk-test-relay",
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_an_llm_key_rejected_error(
    relay: Any, run_config: GraphRunConfig, make_config: Any, status: int
) -> None:
    relay.reset(imitate_litellm=True)
    with pytest.raises(LlmCallError) as caught:
        await compile_graph("chat").ainvoke(
            {"messages": [HumanMessage(f"no [mock:status={status}]")]}, make_config(run_config)
        )
    assert normalize_error(caught.value) == "llm_key_rejected"
    assert str(caught.value).startswith("llm_key_rejected: ")  # the code survives the server's error event
