"""Every graph form a langgraph.json may point at (see the keys of langgraph.json)."""

import typing
from dataclasses import dataclass
from typing import Annotated, Any

from infra_fixture_pkg.helpers import greeting
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


def _append(left: list[str], right: list[str]) -> list[str]:
    return left + right


class State(TypedDict):
    steps: Annotated[list[str], _append]


class Input(TypedDict):
    steps: list[str]


class Output(TypedDict):
    steps: list[str]


@dataclass
class Context:
    user_name: str = "anonymous"


def step(name: str) -> Any:
    def node(state: State) -> dict[str, list[str]]:
        return {"steps": [name]}

    node.__name__ = name
    return node


def _linear(*names: str, context: Any = None) -> StateGraph[Any, Any, Any, Any]:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(State, context_schema=context)
    previous = START
    for name in names:
        builder.add_node(name, step(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


def _greet(state: State) -> dict[str, list[str]]:
    return {"steps": [greeting()]}


# a compiled graph with a context schema
_compiled_builder: StateGraph[Any, Any, Any, Any] = StateGraph(
    State, context_schema=Context, input_schema=Input, output_schema=Output
)
_compiled_builder.add_node("first", step("first"))
_compiled_builder.add_node("greet", _greet)
_compiled_builder.add_edge(START, "first")
_compiled_builder.add_edge("first", "greet")
_compiled_builder.add_edge("greet", END)
compiled_graph = _compiled_builder.compile()

# an uncompiled StateGraph
builder = _linear("alpha", "beta")


# a sync factory that takes the run's config
def make_graph(config: RunnableConfig) -> Any:
    suffix = config.get("configurable", {}).get("suffix", "none")
    return _linear(f"made_{suffix}").compile()


# an async factory without arguments that returns an uncompiled StateGraph
async def amake_graph() -> Any:
    return _linear("async_made")


# a graph with nested subgraphs: nested -> child -> grandchild
_grandchild = _linear("deepest").compile()
_child_builder: StateGraph[Any, Any, Any, Any] = StateGraph(State)
_child_builder.add_node("inner", step("inner"))
_child_builder.add_node("grandchild", _grandchild)
_child_builder.add_edge(START, "inner")
_child_builder.add_edge("inner", "grandchild")
_child_builder.add_edge("grandchild", END)
_child = _child_builder.compile()
_nested_builder: StateGraph[Any, Any, Any, Any] = StateGraph(State)
_nested_builder.add_node("outer", step("outer"))
_nested_builder.add_node("child", _child)
_nested_builder.add_edge(START, "outer")
_nested_builder.add_edge("outer", "child")
_nested_builder.add_edge("child", END)
nested = _nested_builder.compile()


# state declared with typing.TypedDict, which pydantic rejects on Python 3.11
class StdlibInner(typing.TypedDict, total=False):
    note: str


class StdlibState(typing.TypedDict):
    count: int
    inner: StdlibInner | None
    history: Annotated[list[StdlibInner], _append]


_stdlib_builder: StateGraph[Any, Any, Any, Any] = StateGraph(StdlibState)
_stdlib_builder.add_node("count", lambda state: {"count": state["count"] + 1})
_stdlib_builder.add_edge(START, "count")
_stdlib_builder.add_edge("count", END)
stdlib_typed = _stdlib_builder.compile()
