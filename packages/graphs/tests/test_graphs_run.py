"""The catalog graphs run against the real mock upstream (through a recording relay).

Mock rule (docs/mock-llm.md): it answers "You said: <last user text>"; `call <tool> {args}` in the last
user message makes it call that tool when offered; after tool results it answers
"The tool <name> returned: <result>" for each.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

from cogni_ai_core import GraphRunConfig
from cogni_graphs import compile_graph


def _messages(result: dict[str, Any]) -> list[Any]:
    return list(result["messages"])


async def test_chat_answers_deterministically(relay: Any, run_config: GraphRunConfig, make_config: Any) -> None:
    graph: Any = compile_graph("chat")
    result = await graph.ainvoke({"messages": [HumanMessage("hello there")]}, make_config(run_config))
    messages = _messages(result)
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert messages[-1].content == "You said: hello there"
    assert messages[-1].usage_metadata["output_tokens"] == 4
    assert len(relay.requests) == 1
    sent = relay.requests[0].body
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][-1] == {"role": "user", "content": "hello there"}
    assert "tools" not in sent


async def test_chat_streams_tokens_in_messages_mode(relay: Any, run_config: GraphRunConfig, make_config: Any) -> None:
    graph: Any = compile_graph("chat")
    tokens: list[str] = []
    async for chunk, meta in graph.astream(
        {"messages": [HumanMessage("stream me some words")]}, make_config(run_config), stream_mode="messages"
    ):
        assert meta["langgraph_node"] == "chat"
        if isinstance(chunk, AIMessageChunk) and chunk.content:
            tokens.append(str(chunk.content))
    assert len(tokens) == 6
    assert "".join(tokens) == "You said: stream me some words"
    sent = relay.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_poet_calls_the_clock_and_keeps_the_models_tool_call_id(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    graph: Any = compile_graph("poet")
    result = await graph.ainvoke(
        {"messages": [HumanMessage("write about spring, call core__get_current_time")]}, make_config(run_config)
    )
    _human, asks, tool, answer = _messages(result)
    assert isinstance(asks, AIMessage) and len(asks.tool_calls) == 1
    call = asks.tool_calls[0]
    assert call["name"] == "core__get_current_time"
    assert call["id"] and call["id"].startswith("call_")
    assert isinstance(tool, ToolMessage)
    assert tool.tool_call_id == call["id"]
    assert "now" in json.loads(str(tool.content))
    assert isinstance(answer, AIMessage) and not answer.tool_calls
    assert str(answer.content).startswith("The tool core__get_current_time returned: {")
    # the model saw the tool offered, and its own call id came back on the tool result
    first, second = (r.body for r in relay.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["core__get_current_time"]
    assert second["messages"][-1]["tool_call_id"] == call["id"]
    assert second["messages"][-2]["tool_calls"][0]["id"] == call["id"]


async def test_poet_streamed_tool_call_chunks_assemble_with_the_same_id(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    graph: Any = compile_graph("poet")
    updates: list[Any] = []
    async for update in graph.astream(
        {"messages": [HumanMessage('call core__get_current_time {"timezone": "Europe/Berlin"}')]},
        make_config(run_config),
        stream_mode=["messages", "updates"],
    ):
        updates.append(update)
    asked = next(u[1]["poet"]["messages"][0] for u in updates if u[0] == "updates" and "poet" in u[1])
    assert asked.tool_calls[0]["args"] == {"timezone": "Europe/Berlin"}
    tool = next(u[1]["tools"]["messages"][0] for u in updates if u[0] == "updates" and "tools" in u[1])
    assert tool.tool_call_id == asked.tool_calls[0]["id"]
    assert json.loads(str(tool.content))["timezone"] == "Europe/Berlin"


async def test_research_loops_over_tool_calls_then_answers(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    graph: Any = compile_graph("research")
    prompt = 'call core__search_notes {"query": "credits dollar"} then call core__calculator {"expression": "6*7"}'
    result = await graph.ainvoke({"messages": [HumanMessage(prompt)]}, make_config(run_config))
    _, asks, search, calc, answer = _messages(result)
    assert [c["name"] for c in asks.tool_calls] == ["core__search_notes", "core__calculator"]
    assert [search.tool_call_id, calc.tool_call_id] == [c["id"] for c in asks.tool_calls]
    assert json.loads(str(search.content))["matches"][0]["id"] == "credits"
    assert json.loads(str(calc.content)) == {"expression": "6*7", "result": 42}
    assert 'The tool core__calculator returned: {"expression":"6*7","result":42}' in str(answer.content)
    assert len(relay.requests) == 2  # model -> tools -> model -> end


async def test_research_tool_loop_is_bounded(relay: Any, run_config: GraphRunConfig, make_config: Any) -> None:
    from cogni_graphs.research.graph import MAX_TOOL_ROUNDS

    graph: Any = compile_graph("research")
    history: list[Any] = [HumanMessage('call core__calculator {"expression": "1+1"}')]
    for round_no in range(MAX_TOOL_ROUNDS):
        call_id = f"call_prev_{round_no}"
        history += [
            AIMessage("", tool_calls=[{"id": call_id, "name": "core__calculator", "args": {"expression": "1+1"}}]),
            ToolMessage('{"result": 2}', tool_call_id=call_id, name="core__calculator"),
        ]
    result = await graph.ainvoke({"messages": history}, make_config(run_config))
    assert relay.requests[0].body["tool_choice"] == "none"  # budget spent: the model must answer
    assert not result["messages"][-1].tool_calls

    relay.requests.clear()
    history.append(HumanMessage('call core__calculator {"expression": "2+2"}'))
    await graph.ainvoke({"messages": history}, make_config(run_config, thread_id="thread-2"))
    assert relay.requests[0].body["tool_choice"] == "auto"  # a new user turn gets a fresh budget


async def test_empty_tool_ids_yield_policy_denied_results(
    relay: Any, run_config: GraphRunConfig, make_config: Any
) -> None:
    denied = run_config.model_copy(update={"tool_ids": []})
    graph: Any = compile_graph("research")
    prompt = 'call core__calculator {"expression": "2+2"}'
    result = await graph.ainvoke({"messages": [HumanMessage(prompt)]}, make_config(denied))
    _, asks, tool, answer = _messages(result)
    assert tool.tool_call_id == asks.tool_calls[0]["id"]
    assert tool.status == "error"
    assert json.loads(str(tool.content))["error"] == "policy_denied"
    assert "policy_denied" in str(answer.content)


async def test_tool_ids_allow_some_and_deny_others(relay: Any, run_config: GraphRunConfig, make_config: Any) -> None:
    partial = run_config.model_copy(update={"tool_ids": ["core__calculator"]})
    graph: Any = compile_graph("research")
    prompt = 'call core__search_notes {"query": "moon"} call core__calculator {"expression": "2+2"}'
    result = await graph.ainvoke({"messages": [HumanMessage(prompt)]}, make_config(partial))
    search, calc = (m for m in _messages(result) if isinstance(m, ToolMessage))
    assert json.loads(str(search.content))["error"] == "policy_denied"
    assert json.loads(str(calc.content))["result"] == 4
