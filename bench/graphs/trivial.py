"""The cheapest graph a server can run: one node that bumps a counter.

A run of it costs the graph almost nothing, so its latency is the server's own overhead
(thread creation, run bookkeeping, checkpoints, streaming).
"""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    count: int


def bump(state: State) -> State:
    """Add one to the counter so the client can check the run really executed."""
    return {"count": state.get("count", 0) + 1}


builder = StateGraph(State)
builder.add_node("bump", bump)
builder.add_edge(START, "bump")
builder.add_edge("bump", END)
graph = builder.compile()
