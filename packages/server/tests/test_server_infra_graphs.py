"""Loading a LangGraph project's langgraph.json: every graph form, schemas, drawing, subgraphs, errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from cogni_server.graphs import GraphLoadError, GraphNotFound, GraphRegistry
from cogni_server.graphs.loader import module_name_for

PROJECT = Path(__file__).parent / "infra_fixtures" / "project" / "langgraph.json"
ENV_VARS = ("INFRA_FIXTURE_GREETING", "INFRA_FIXTURE_PRESET", "INFRA_FIXTURE_INLINE")


@pytest.fixture(autouse=True)
def isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading a project edits sys.path and os.environ: restore both after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    for name in ENV_VARS:
        os.environ.pop(name, None)


@pytest.fixture
def registry() -> GraphRegistry:
    return GraphRegistry.from_config(PROJECT)


def thread(thread_id: str, **configurable: Any) -> RunnableConfig:
    return RunnableConfig(configurable={"thread_id": thread_id, **configurable})


def test_lists_every_graph_of_the_project(registry: GraphRegistry) -> None:
    assert registry.graph_ids() == [
        "compiled", "builder", "factory", "async_factory", "nested", "by_module", "described", "stdlib_typed",
    ]  # fmt: skip
    assert "compiled" in registry and "missing" not in registry
    assert registry.description("described") == "A described graph"
    assert registry.description("compiled") is None


async def test_compiled_graph_is_bound_to_the_servers_checkpointer(registry: GraphRegistry) -> None:
    saver = InMemorySaver()
    graph = await registry.get("compiled", checkpointer=saver)
    result = await graph.ainvoke({"steps": ["start"]}, thread("t1"))
    assert result == {"steps": ["start", "first", "hello-from-env-file"]}
    state = await graph.aget_state(thread("t1"))  # persisted through the saver we passed
    assert state.values["steps"][-1] == "hello-from-env-file"
    assert saver.get_tuple(thread("t1")) is not None
    # the user's module-level graph is not modified
    user_module = sys.modules[module_name_for(PROJECT.parent / "graphs" / "agent.py")]
    assert user_module.compiled_graph.checkpointer is None
    assert graph is not user_module.compiled_graph


async def test_static_graphs_are_bound_once_per_checkpointer(registry: GraphRegistry) -> None:
    saver, other, store = InMemorySaver(), InMemorySaver(), InMemoryStore()
    first = await registry.get("compiled", checkpointer=saver)
    assert await registry.get("compiled", checkpointer=saver) is first
    second = await registry.get("compiled", checkpointer=other, store=store)
    assert second is not first
    assert second.checkpointer is other and second.store is store


async def test_state_graph_is_compiled_with_the_checkpointer(registry: GraphRegistry) -> None:
    saver = InMemorySaver()
    graph = await registry.get("builder", checkpointer=saver)
    assert (await graph.ainvoke({"steps": []}, thread("b")))["steps"] == ["alpha", "beta"]
    assert saver.get_tuple(thread("b")) is not None


async def test_factory_receives_the_run_config(registry: GraphRegistry) -> None:
    saver = InMemorySaver()
    config = thread("f", suffix="x")
    graph = await registry.get("factory", checkpointer=saver, config=config)
    assert (await graph.ainvoke({"steps": []}, config))["steps"] == ["made_x"]
    other = await registry.get("factory", checkpointer=saver, config=thread("g", suffix="y"))
    assert (await other.ainvoke({"steps": []}, thread("g")))["steps"] == ["made_y"]
    assert saver.get_tuple(thread("g")) is not None


async def test_async_factory_returning_a_state_graph(registry: GraphRegistry) -> None:
    saver = InMemorySaver()
    graph = await registry.get("async_factory", checkpointer=saver)
    assert (await graph.ainvoke({"steps": []}, thread("a")))["steps"] == ["async_made"]
    assert saver.get_tuple(thread("a")) is not None


async def test_module_spec_dependencies_and_env_file(registry: GraphRegistry) -> None:
    graph = await registry.get("by_module", checkpointer=InMemorySaver())
    assert (await graph.ainvoke({"text": "x"}, thread("m")))["text"] == "hello-from-env-file:x"
    assert str(PROJECT.parent / "deps") in sys.path


def test_process_environment_wins_over_the_project_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRA_FIXTURE_PRESET", "from-operator")
    GraphRegistry.from_config(PROJECT)
    assert os.environ["INFRA_FIXTURE_PRESET"] == "from-operator"
    assert os.environ["INFRA_FIXTURE_GREETING"] == "hello-from-env-file"


def test_env_given_inline_as_a_dict(tmp_path: Path) -> None:
    config = write_project(tmp_path, {"g": "./g.py:graph"}, env={"INFRA_FIXTURE_INLINE": "inline"})
    GraphRegistry.from_config(config)
    assert os.environ["INFRA_FIXTURE_INLINE"] == "inline"


async def test_unknown_graph_is_graph_not_found(registry: GraphRegistry) -> None:
    with pytest.raises(GraphNotFound) as caught:
        await registry.get("nope", checkpointer=InMemorySaver())
    assert str(caught.value) == "graph 'nope' not found"
    assert isinstance(caught.value, KeyError)
    with pytest.raises(GraphNotFound):
        registry.schemas("nope")


def test_schemas_come_from_the_compiled_graph(registry: GraphRegistry) -> None:
    schemas = registry.schemas("compiled")
    assert set(schemas) == {
        "graph_id", "input_schema", "output_schema", "state_schema", "config_schema", "context_schema",
    }  # fmt: skip
    assert schemas["graph_id"] == "compiled"
    assert schemas["input_schema"]["title"] == "Input"
    assert schemas["output_schema"]["title"] == "Output"
    assert schemas["state_schema"]["properties"]["steps"]["type"] == "array"
    assert schemas["context_schema"]["properties"]["user_name"]["default"] == "anonymous"
    assert isinstance(schemas["config_schema"], dict)
    json.dumps(schemas)  # the API serialises it as is
    assert registry.schemas("builder")["context_schema"] is None
    # factories are introspected by calling them once with an empty config
    assert registry.schemas("factory")["input_schema"]["properties"]["steps"]["type"] == "array"


def test_schemas_of_state_declared_with_typing_typeddict(registry: GraphRegistry) -> None:
    """pydantic rejects typing.TypedDict on Python 3.11; the schemas must still be there."""
    schemas = registry.schemas("stdlib_typed")
    state = schemas["state_schema"]
    assert state["title"] == "StdlibState"
    assert set(state["properties"]) == {"count", "inner", "history"}
    assert state["required"] == ["count", "inner", "history"]
    assert state["$defs"]["StdlibInner"]["properties"] == {"note": {"title": "Note", "type": "string"}}
    assert "required" not in state["$defs"]["StdlibInner"]  # total=False survives
    assert schemas["input_schema"]["properties"]["count"] == {"title": "Count", "type": "integer"}
    assert schemas["output_schema"]["title"] == "StdlibState"


async def test_schemas_of_an_async_factory_from_inside_an_event_loop(registry: GraphRegistry) -> None:
    assert registry.schemas("async_factory")["state_schema"]["title"] == "State"


def test_drawable_graph_nodes_and_edges(registry: GraphRegistry) -> None:
    flat = registry.drawable("nested")
    assert [n["id"] for n in flat["nodes"]] == ["__start__", "outer", "child", "__end__"]
    assert {"source": "outer", "target": "child"} in flat["edges"]
    deep = registry.drawable("nested", xray=True)
    ids = {n["id"] for n in deep["nodes"]}
    assert {"child:inner", "child:grandchild:deepest"} <= ids
    one_level = {n["id"] for n in registry.drawable("nested", xray=1)["nodes"]}
    assert "child:inner" in one_level and "child:grandchild:deepest" not in one_level
    json.dumps(deep)


def test_subgraphs_by_namespace_and_recursion(registry: GraphRegistry) -> None:
    assert list(registry.subgraphs("nested", None, False)) == ["child"]
    everything = registry.subgraphs("nested", None, True)
    assert list(everything) == ["child", "child|grandchild"]
    assert everything["child"]["state_schema"]["properties"]["steps"]["type"] == "array"
    assert list(registry.subgraphs("nested", "child|grandchild", True)) == ["child|grandchild"]
    assert registry.subgraphs("nested", "nothing", True) == {}
    assert registry.subgraphs("compiled", None, True) == {}


def test_files_with_the_same_name_in_different_folders_do_not_clash(tmp_path: Path) -> None:
    for folder, node in (("a", "from_a"), ("b", "from_b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "graph.py").write_text(GRAPH_SOURCE.replace("NODE", node))
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"a": "./a/graph.py:graph", "b": "b/graph.py:graph"}}))
    registry = GraphRegistry.from_config(config)
    assert [n["id"] for n in registry.drawable("a")["nodes"]][1] == "from_a"
    assert [n["id"] for n in registry.drawable("b")["nodes"]][1] == "from_b"


GRAPH_SOURCE = """
from typing_extensions import TypedDict
from langgraph.graph import StateGraph, START, END
class S(TypedDict):
    x: int
b = StateGraph(S)
b.add_node("NODE", lambda s: {"x": s["x"] + 1})
b.add_edge(START, "NODE")
b.add_edge("NODE", END)
graph = b.compile()
"""


def write_project(
    root: Path, graphs: dict[str, Any], source: str = GRAPH_SOURCE.replace("NODE", "n"), **extra: Any
) -> Path:
    (root / "g.py").write_text(source)
    config = root / "langgraph.json"
    config.write_text(json.dumps({"graphs": graphs, **extra}))
    return config


@pytest.mark.parametrize(
    ("graphs", "source", "extra", "message"),
    [
        ({"g": "./missing.py:graph"}, None, {}, "file not found"),
        ({"g": "./g.py:nothing"}, None, {}, "module has no attribute 'nothing'"),
        ({"g": "./g.py"}, None, {}, "must be './file.py:attr'"),
        ({"g": "./g.py:graph"}, "raise RuntimeError('boom at import')", {}, "boom at import"),
        ({"g": "./g.py:graph"}, "graph = 42", {}, "got int"),
        ({"g": "no_such_module_xyz.graphs:graph"}, None, {}, "cannot import module 'no_such_module_xyz.graphs'"),
        ({}, None, {}, "'graphs' must be a non-empty object"),
        ({"g": "./g.py:graph"}, None, {"env": "./absent.env"}, "env file not found"),
        ({"g": "./g.py:graph"}, None, {"dependencies": ["./absent"]}, "dependency path not found"),
    ],
)
def test_broken_projects_fail_with_a_clear_error(
    tmp_path: Path, graphs: dict[str, Any], source: str | None, extra: dict[str, Any], message: str
) -> None:
    kwargs: dict[str, Any] = {"source": source} if source else {}
    config = write_project(tmp_path, graphs, **kwargs, **extra)
    with pytest.raises(GraphLoadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        GraphRegistry.from_config(config)


def test_missing_or_invalid_config_file(tmp_path: Path) -> None:
    with pytest.raises(GraphLoadError, match="LangGraph config not found"):
        GraphRegistry.from_config(tmp_path / "langgraph.json")
    (tmp_path / "langgraph.json").write_text("{not json")
    with pytest.raises(GraphLoadError, match="cannot read LangGraph config"):
        GraphRegistry.from_config(tmp_path / "langgraph.json")


async def test_factory_that_fails_or_returns_junk(tmp_path: Path) -> None:
    source = "def broken(config):\n    raise ValueError('no model configured')\n\ndef junk():\n    return 5\n"
    config = write_project(tmp_path, {"broken": "./g.py:broken", "junk": "./g.py:junk"}, source=source)
    registry = GraphRegistry.from_config(config)
    with pytest.raises(GraphLoadError, match="no model configured"):
        await registry.get("broken", checkpointer=InMemorySaver())
    with pytest.raises(GraphLoadError, match="factory returned int"):
        await registry.get("junk", checkpointer=InMemorySaver())
