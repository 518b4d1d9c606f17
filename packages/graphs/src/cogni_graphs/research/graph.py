"""`research`: loops model -> tools -> model until the model answers. (Absolute imports: loaded by file path.)"""

from typing import Any

from langgraph.graph import StateGraph

from cogni_graphs.nodes import tool_loop

NAME = "research"
SYSTEM_PROMPT = (
    "You are a careful researcher. Use core__search_notes to find facts in the notes and core__calculator "
    "for any arithmetic. Call tools as often as you need, then answer briefly, citing note ids."
)
MAX_TOOL_ROUNDS = 5


def build() -> StateGraph[Any]:
    """START -> agent -(tool calls)-> tools -> agent ... -> END, at most MAX_TOOL_ROUNDS tool rounds."""
    return tool_loop(graph=NAME, node="agent", system_prompt=SYSTEM_PROMPT, max_tool_rounds=MAX_TOOL_ROUNDS)


graph = build().compile()
