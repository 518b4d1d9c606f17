"""LangGraph's own ``RemoteGraph`` (built on the official client) drives a graph on our server."""

from __future__ import annotations

import uuid

from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command

from .conftest import KEY_A, Server


async def test_remote_graph_interrupt_resume_state_and_history(server: Server) -> None:
    graph = RemoteGraph("approval", url=server.url, api_key=KEY_A)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    updates = [chunk async for chunk in graph.astream({"request": "r"}, config, stream_mode="updates")]
    assert updates[0] == {"prepare": {"log": ["prepared"]}}
    state = await graph.aget_state(config)
    assert state.next == ("ask",)
    assert state.tasks[0].interrupts[0].value == {"question": "approve r?"}
    out = await graph.ainvoke(Command(resume="ok"), config)
    assert out["log"] == ["prepared", "asked", "finished:ok"]
    history = [h async for h in graph.aget_state_history(config)]
    assert len(history) >= 4
    await graph.aupdate_state(config, {"decision": "patched"}, as_node="finish")
    assert (await graph.aget_state(config)).values["decision"] == "patched"


async def test_remote_graph_stateless_invoke(server: Server) -> None:
    graph = RemoteGraph("echo", url=server.url, api_key=KEY_A)
    out = await graph.ainvoke({"messages": [{"role": "user", "content": "x"}]})
    assert out["messages"][-1]["content"] == "echo: x"
