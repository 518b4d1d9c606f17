"""Graph factories in every form the reference accepts, through a real server and the official SDK:
compiled graph, StateGraph, a function of config, of ServerRuntime, of both (sync, async, keyword
only), async and sync context managers; called per run with the run's config and per state read,
state update and schema request with the matching access context; configurable headers reach them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, KEY_B, start_server

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "langgraph_json"
GRAPHS = (
    "compiled",
    "builder",
    "make_graph",
    "make_with_config",
    "make_with_runtime",
    "make_with_both",
    "make_keyword_only",
    "make_async_cm",
    "make_sync_cm",
    "generate_agent",
)
FACTORIES = [g for g in GRAPHS if g not in ("compiled", "builder")]


@pytest.fixture(scope="module")
def factory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = tmp_path_factory.mktemp("factories") / "langgraph.json"
    project.write_text(
        json.dumps(
            {
                "$schema": "https://langgra.ph/schema.json",
                "dependencies": ["."],
                "graphs": {name: f"{FIXTURES / 'factory_graphs.py'}:{name}" for name in GRAPHS},
                "http": {
                    "configurable_headers": {
                        "includes": ["x-organization-id", "x-custom-*"],
                        "excludes": ["x-custom-secret"],
                    }
                },
            }
        )
    )
    with fresh_database("cogni_server_factories") as db:
        port = free_port()
        proc: ManagedProcess = start_server(db, port, project=project, name="factory-server")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


@pytest.fixture
async def client(factory_server: str) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=factory_server, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


async def _seen(client: LangGraphClient, graph: str, **kwargs: Any) -> list[str]:
    result = await client.runs.wait(None, graph, input={}, **kwargs)
    assert isinstance(result, dict), result
    seen: list[str] = result["seen"]
    return seen


async def _calls(client: LangGraphClient) -> list[dict[str, Any]]:
    items = await client.store.search_items(["factory_calls"], limit=1000)
    return [item["value"] for item in items["items"]]


async def test_every_graph_form_runs_with_the_runs_config(client: LangGraphClient) -> None:
    config = {"configurable": {"model": "m1"}}
    assert await _seen(client, "compiled") == ["compiled"]
    assert await _seen(client, "builder") == ["builder"]
    assert await _seen(client, "make_graph", config=config) == ["config:m1"]
    assert await _seen(client, "make_with_config", config=config) == ["config:m1"]
    assert await _seen(client, "make_with_config") == ["config:default"]
    assert await _seen(client, "make_with_runtime", context={"tone": "warm"}) == [
        "runtime:threads.create_run",
        "context:warm",
    ]
    assert await _seen(client, "make_with_both", config=config) == ["both:m1:threads.create_run:user=none"]
    assert await _seen(client, "make_keyword_only", config=config) == ["kw:threads.create_run:m1"]
    assert await _seen(client, "make_async_cm") == ["async_cm:executing"]
    assert await _seen(client, "make_sync_cm", config=config) == ["sync_cm:m1"]


async def test_a_thread_run_rebuilds_the_graph_per_run_with_that_runs_config(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.wait(
        thread["thread_id"], "make_with_config", input={}, config={"configurable": {"model": "a"}}
    )
    second = await client.runs.wait(
        thread["thread_id"], "make_with_config", input={}, config={"configurable": {"model": "b"}}
    )
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["seen"] == ["config:a"]
    assert second["seen"] == ["config:a", "config:b"]  # the state accumulates; each run built its own graph


async def test_runtime_factory_is_called_for_each_access_context_with_the_callers_store(
    client: LangGraphClient, factory_server: str
) -> None:
    def per_access(calls: list[dict[str, Any]]) -> dict[str, int]:
        counts = dict.fromkeys(("threads.create_run", "threads.read", "threads.update", "assistants.read"), 0)
        for call in calls:
            if call["factory"] == "runtime":
                counts[call["access"]] += 1
        return counts

    before = per_access(await _calls(client))
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "make_with_runtime", input={})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["seen"] == ["runtime:threads.create_run", "context:-"]
    await client.threads.update_state(thread["thread_id"], {"seen": ["edited"]}, as_node="report")
    history = await client.threads.get_history(thread["thread_id"])
    assert history[0]["values"]["seen"][-1] == "edited"
    schemas = await client.assistants.get_schemas("make_with_runtime")
    assert "seen" in schemas["input_schema"]["properties"]
    drawn = await client.assistants.get_graph("make_with_runtime")
    assert "report" in {node["id"] for node in drawn["nodes"]}
    assert await client.assistants.get_subgraphs("make_with_runtime") == {}

    after = per_access(await _calls(client))
    assert after["threads.create_run"] == before["threads.create_run"] + 1  # one run: one call
    assert after["threads.read"] >= before["threads.read"] + 2  # the state read and the history
    assert after["threads.update"] >= before["threads.update"] + 1
    assert after["assistants.read"] == before["assistants.read"] + 3  # schemas, graph, subgraphs

    other = get_client(url=factory_server, api_key=KEY_B)  # runtime.store is the caller's view of the store
    try:
        assert (await other.store.search_items(["factory_calls"], limit=1000))["items"] == []
    finally:
        await other.aclose()


async def test_a_context_manager_factory_is_closed_after_the_run(client: LangGraphClient) -> None:
    def count(calls: list[dict[str, Any]], factory: str) -> int:
        return sum(1 for c in calls if c["factory"] == factory and c["access"] == "threads.create_run")

    calls = await _calls(client)
    entered, exited = count(calls, "async_cm_enter"), count(calls, "async_cm_exit")
    assert await _seen(client, "make_async_cm") == ["async_cm:executing"]
    calls = await _calls(client)
    assert count(calls, "async_cm_enter") == entered + 1
    assert count(calls, "async_cm_exit") == exited + 1  # closed before the run's result was answered


@pytest.mark.parametrize("graph", GRAPHS)
async def test_schemas_graph_and_subgraphs_answer_for_every_form(client: LangGraphClient, graph: str) -> None:
    schemas = await client.assistants.get_schemas(graph)
    assert schemas["graph_id"] == graph
    assert "seen" in schemas["state_schema"]["properties"]
    drawn = await client.assistants.get_graph(graph)
    assert {"__start__", "report"} <= {node["id"] for node in drawn["nodes"]}
    assert await client.assistants.get_subgraphs(graph) == {}


async def test_configurable_headers_reach_the_factory_and_the_graph(client: LangGraphClient) -> None:
    headers = {"x-organization-id": "acme", "x-custom-team": "blue", "x-custom-secret": "hidden", "x-other": "no"}
    seen = await _seen(client, "generate_agent", headers=headers)
    assert seen == ["agent-for:acme", "org=acme"]  # the doc's shape: the factory built the graph from the header
    run = await client.runs.create(None, "generate_agent", input={}, headers=headers, on_completion="keep")
    configurable = run["kwargs"]["config"]["configurable"]
    assert configurable["x-organization-id"] == "acme" and configurable["x-custom-team"] == "blue"
    assert "x-custom-secret" not in configurable  # excluded, although it matches an include
    assert "x-other" not in configurable and "x-api-key" not in configurable  # not included
