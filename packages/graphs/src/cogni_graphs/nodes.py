"""Building blocks the catalog graphs share: the LLM node, the route after it, and the tool-loop shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph

from cogni_graphs.catalog import catalog_entry
from cogni_graphs.llm.factory import chat_model
from cogni_graphs.state import ChatState, GraphNode
from cogni_graphs.tools.policy import tools_node
from cogni_graphs.tools.registry import tools_for


def tool_rounds(messages: Sequence[BaseMessage]) -> int:
    """How many times the model asked for tools since the last user message."""
    rounds = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage) and message.tool_calls:
            rounds += 1
    return rounds


def llm_node(*, graph: str, node: str, system_prompt: str, max_tool_rounds: int | None = None) -> GraphNode:
    """A node that asks the run's model for the next message, offering the graph's catalog tools.

    All catalog tools are offered even when the run's policy denies some: a denied call then answers
    `policy_denied` visibly instead of the model silently lacking a tool. After `max_tool_rounds`
    rounds the model must answer in text (`tool_choice="none"`), so a tool loop always ends.
    """
    tools = tools_for(catalog_entry(graph).tool_ids)

    async def call_model(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        model = chat_model(config, graph=graph, node=node)
        messages = [SystemMessage(system_prompt), *state["messages"]]
        if not tools:
            response = await model.ainvoke(messages, config)
        else:
            exhausted = max_tool_rounds is not None and tool_rounds(state["messages"]) >= max_tool_rounds
            bound = model.bind_tools(tools, tool_choice="none" if exhausted else "auto")
            response = await bound.ainvoke(messages, config)
        return {"messages": [response]}

    call_model.__name__ = f"{graph}_{node}"
    return call_model


def route_tools(state: ChatState) -> Literal["tools", "__end__"]:
    """Go to the tools node when the last AI message asks for tools, else end."""
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "__end__"


def tool_loop(*, graph: str, node: str, system_prompt: str, max_tool_rounds: int) -> StateGraph[Any]:
    """START -> `node` -(tool calls)-> tools -> `node` ... -> END, at most `max_tool_rounds` tool rounds."""
    builder = StateGraph(ChatState)
    builder.add_node(
        node, llm_node(graph=graph, node=node, system_prompt=system_prompt, max_tool_rounds=max_tool_rounds)
    )
    builder.add_node("tools", tools_node(graph=graph))
    builder.add_edge(START, node)
    builder.add_conditional_edges(node, route_tools)
    builder.add_edge("tools", node)
    return builder
