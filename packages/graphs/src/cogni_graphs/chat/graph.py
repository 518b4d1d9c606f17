"""`chat`: plain conversation with the run's model, no tools. (Absolute imports: loaded by file path.)"""

from typing import Any

from langgraph.graph import END, START, StateGraph

from cogni_graphs.nodes import llm_node
from cogni_graphs.state import ChatState

NAME = "chat"
SYSTEM_PROMPT = "You are a helpful, concise assistant."


def build() -> StateGraph[Any]:
    """START -> chat -> END."""
    builder = StateGraph(ChatState)
    builder.add_node("chat", llm_node(graph=NAME, node="chat", system_prompt=SYSTEM_PROMPT))
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder


graph = build().compile()
