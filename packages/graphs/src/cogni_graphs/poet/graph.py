"""`poet`: writes a short poem; may ask `core__get_current_time` first. (Absolute imports: loaded by file path.)"""

from typing import Any

from langgraph.graph import StateGraph

from cogni_graphs.nodes import tool_loop

NAME = "poet"
SYSTEM_PROMPT = (
    "You are a poet. Before writing, call core__get_current_time to learn the moment you are writing in, "
    "then write a short poem (at most eight lines) about the user's topic and that moment."
)
MAX_TOOL_ROUNDS = 2


def build() -> StateGraph[Any]:
    """START -> poet -(tool calls)-> tools -> poet -> END."""
    return tool_loop(graph=NAME, node="poet", system_prompt=SYSTEM_PROMPT, max_tool_rounds=MAX_TOOL_ROUNDS)


graph = build().compile()
