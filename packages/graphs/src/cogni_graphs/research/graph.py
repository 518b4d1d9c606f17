"""`research`: loops model -> tools -> model until the model answers. (Absolute imports: loaded by file path.)"""

from typing import Any

from langgraph.graph import START, StateGraph

from cogni_graphs.nodes import llm_node, route_tools
from cogni_graphs.state import ChatState
from cogni_graphs.tools.policy import tools_node

NAME = "research"
SYSTEM_PROMPT = (
    "You are a careful researcher. Use core__search_notes to find facts in the notes and core__calculator "
    "for any arithmetic. Call tools as often as you need, then answer briefly, citing note ids."
)
MAX_TOOL_ROUNDS = 5


def build() -> StateGraph[Any]:
    """START -> agent -(tool calls)-> tools -> agent ... -> END, at most MAX_TOOL_ROUNDS tool rounds."""
    builder = StateGraph(ChatState)
    builder.add_node(
        "agent", llm_node(graph=NAME, node="agent", system_prompt=SYSTEM_PROMPT, max_tool_rounds=MAX_TOOL_ROUNDS)
    )
    builder.add_node("tools", tools_node(graph=NAME))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route_tools)
    builder.add_edge("tools", "agent")
    return builder


graph = build().compile()
