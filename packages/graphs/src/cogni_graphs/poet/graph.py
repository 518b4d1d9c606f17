"""`poet`: writes a short poem; may ask `core__get_current_time` first. (Absolute imports: loaded by file path.)"""

from typing import Any

from langgraph.graph import START, StateGraph

from cogni_graphs.nodes import llm_node, route_tools
from cogni_graphs.state import ChatState
from cogni_graphs.tools.policy import tools_node

NAME = "poet"
SYSTEM_PROMPT = (
    "You are a poet. Before writing, call core__get_current_time to learn the moment you are writing in, "
    "then write a short poem (at most eight lines) about the user's topic and that moment."
)
MAX_TOOL_ROUNDS = 2


def build() -> StateGraph[Any]:
    """START -> poet -(tool calls)-> tools -> poet -> END."""
    builder = StateGraph(ChatState)
    builder.add_node(
        "poet", llm_node(graph=NAME, node="poet", system_prompt=SYSTEM_PROMPT, max_tool_rounds=MAX_TOOL_ROUNDS)
    )
    builder.add_node("tools", tools_node(graph=NAME))
    builder.add_edge(START, "poet")
    builder.add_conditional_edges("poet", route_tools)
    builder.add_edge("tools", "poet")
    return builder


graph = build().compile()
