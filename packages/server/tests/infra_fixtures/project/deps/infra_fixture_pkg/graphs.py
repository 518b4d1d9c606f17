"""A graph referenced as ``package.module:attr``."""

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from infra_fixture_pkg.helpers import greeting


class State(TypedDict):
    text: str


def greet(state: State) -> dict[str, str]:
    return {"text": f"{greeting()}:{state['text']}"}


_builder = StateGraph(State)
_builder.add_node("greet", greet)
_builder.add_edge(START, "greet")
_builder.add_edge("greet", END)
graph = _builder.compile()
