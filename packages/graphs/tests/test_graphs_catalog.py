"""The catalog is the single source of truth: graphs build, tools exist, langgraph.json matches it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from langgraph.pregel import Pregel
from typer.testing import CliRunner

from cogni_graphs import CATALOG, UnknownGraph, catalog_entry, compile_graph
from cogni_graphs.cli import app
from cogni_graphs.langgraph_json import DEFAULT_PATH, drift, render
from cogni_graphs.tools import TOOLS

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def test_catalog_names_the_three_graphs_with_their_tools() -> None:
    assert list(CATALOG) == ["chat", "poet", "research"]
    assert CATALOG["chat"].tool_ids == ()
    assert CATALOG["poet"].tool_ids == ("core__get_current_time",)
    assert set(CATALOG["research"].tool_ids) == {"core__search_notes", "core__calculator"}
    for entry in CATALOG.values():
        assert entry.display_name and entry.description
        assert set(entry.tool_ids) <= set(TOOLS), f"{entry.name} names a tool the registry lacks"
        assert entry.graph_id == f"langgraph:{entry.name}"


def test_catalog_entry_accepts_namespaced_ids_and_names_the_known_graphs_when_unknown() -> None:
    assert catalog_entry("langgraph:poet") is CATALOG["poet"]
    with pytest.raises(UnknownGraph, match="chat, poet, research"):
        catalog_entry("langgraph:nope")


@pytest.mark.parametrize("name", list(CATALOG))
def test_compile_graph_binds_the_callers_checkpointer(name: str) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    compiled = compile_graph(name, checkpointer=saver)
    assert compiled.checkpointer is saver
    assert compile_graph(name).checkpointer is None


@pytest.mark.parametrize("name", list(CATALOG))
def test_langgraph_json_path_loads_a_compiled_graph_without_checkpointer_by_file(name: str) -> None:
    """The server imports graph files by path, not as package modules: they must stand alone."""
    location, _, attr = CATALOG[name].langgraph_path.rpartition(":")
    path = (PACKAGE_DIR / location).resolve()
    spec = importlib.util.spec_from_file_location(f"cogni_test_graph_file_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    graph = getattr(module, attr)
    assert isinstance(graph, Pregel)
    assert graph.checkpointer is None
    assert set(graph.get_graph().nodes) >= {"__start__", "__end__"}


def test_committed_langgraph_json_matches_the_catalog() -> None:
    assert DEFAULT_PATH == PACKAGE_DIR / "langgraph.json"
    assert drift() == "", "langgraph.json drifted from the catalog: run `uv run cogni-graphs sync`"
    document = json.loads(DEFAULT_PATH.read_text())
    assert document["graphs"] == {n: e.langgraph_path for n, e in CATALOG.items()}
    assert document["dependencies"] == ["."]


def test_sync_check_fails_with_a_diff_on_drift_and_sync_repairs_it(tmp_path: Path) -> None:
    target = tmp_path / "langgraph.json"
    stale = json.loads(render())
    del stale["graphs"]["research"]
    target.write_text(json.dumps(stale, indent=2) + "\n")
    runner = CliRunner()

    checked = runner.invoke(app, ["sync", "--check", "--path", str(target)])
    assert checked.exit_code == 1
    assert '+    "research": "./src/cogni_graphs/research/graph.py:graph"' in checked.output
    assert "run `cogni-graphs sync`" in checked.output

    synced = runner.invoke(app, ["sync", "--path", str(target)])
    assert synced.exit_code == 0, synced.output
    assert target.read_text() == render()
    assert runner.invoke(app, ["sync", "--check", "--path", str(target)]).exit_code == 0


def test_list_prints_every_graph_with_its_tools() -> None:
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for name, entry in CATALOG.items():
        assert name in result.output and entry.display_name in result.output
    assert "core__get_current_time" in result.output
