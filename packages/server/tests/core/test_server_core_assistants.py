"""Assistants through the official client, and the system routes."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from .conftest import KEY_A, PROJECT, Server


async def test_system_assistant_per_graph_with_reference_ids(client: LangGraphClient) -> None:
    found = await client.assistants.search(graph_id="echo", metadata={"created_by": "system"})
    assert len(found) == 1
    system = found[0]
    namespace = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
    assert system["assistant_id"] == str(uuid.uuid5(namespace, "echo"))
    assert str(uuid.uuid5(namespace, "agent")) == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    by_graph = await client.assistants.get("echo")
    assert by_graph["assistant_id"] == system["assistant_id"]
    graphs = json.loads(PROJECT.read_text())["graphs"]
    assert await client.assistants.count(metadata={"created_by": "system"}) == len(graphs)


async def test_create_get_patch_versions_latest_delete(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "echo", config={"configurable": {"x": 1}}, metadata={"team": "a"}, name="mine", description="d"
    )
    aid = created["assistant_id"]
    assert created["version"] == 1 and created["name"] == "mine"
    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=aid)
    same = await client.assistants.create("echo", assistant_id=aid, if_exists="do_nothing")
    assert same["assistant_id"] == aid
    patched = await client.assistants.update(aid, config={"configurable": {"x": 2}}, metadata={"more": True})
    assert patched["version"] == 2
    assert patched["config"]["configurable"]["x"] == 2
    assert patched["metadata"] == {"team": "a", "more": True}
    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [2, 1]
    back = await client.assistants.set_latest(aid, 1)
    assert back["version"] == 1 and back["config"]["configurable"]["x"] == 1
    assert (await client.assistants.get(aid))["version"] == 1
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)


async def test_assistant_config_reaches_runs(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", config={"configurable": {"flavour": "mint"}})
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, created["assistant_id"], input={"messages": []})
    await client.runs.join(tid, run["run_id"])
    got = await client.runs.get(tid, run["run_id"])
    assert got["assistant_id"] == created["assistant_id"]
    assert got["kwargs"]["config"]["configurable"]["flavour"] == "mint"


async def test_search_pagination_and_select(client: LangGraphClient, server: Server) -> None:
    tag = uuid.uuid4().hex
    for i in range(3):
        await client.assistants.create("custom", metadata={"tag": tag}, name=f"n{i}")
    page = await client.assistants.search(metadata={"tag": tag}, limit=2, response_format="object")
    assert len(page["assistants"]) == 2 and page["next"] == "2"
    by_name = await client.assistants.search(metadata={"tag": tag}, sort_by="name", sort_order="asc")
    assert [a["name"] for a in by_name] == ["n0", "n1", "n2"]
    sel = await client.assistants.search(metadata={"tag": tag}, select=["assistant_id", "name"])
    assert set(sel[0]) == {"assistant_id", "name"}
    assert await client.assistants.count(metadata={"tag": tag}, graph_id="custom") == 3
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.post("/assistants/search", json={"metadata": {"tag": tag}, "limit": 5})
        assert r.headers["X-Pagination-Total"] == "3"


async def test_graph_schemas_subgraphs(client: LangGraphClient) -> None:
    graph = await client.assistants.get_graph("approval")
    node_ids = {n["id"] for n in graph["nodes"]}
    assert {"prepare", "ask", "finish"} <= node_ids
    schemas = await client.assistants.get_schemas("approval")
    assert schemas["graph_id"] == "approval"
    assert "request" in schemas["state_schema"]["properties"]
    subgraphs = await client.assistants.get_subgraphs("nested")
    assert "parent" in subgraphs
    assert "parent" in await client.assistants.get_subgraphs("nested", namespace="parent")


async def test_system_assistant_is_read_only(client: LangGraphClient) -> None:
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.assistants.update("echo", metadata={"x": 1})
    assert info.value.response.status_code == 403
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.assistants.delete("echo")
    assert info.value.response.status_code == 403


async def test_cors_is_off_unless_configured(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/ok", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_system_routes(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["database"] == "ok"
        info = (await http.get("/info")).json()
        assert info["flags"]["assistants"] is True and "echo" in info["graphs"]
        metrics = await http.get("/metrics")
        assert "cogni_runs_finished_total" in metrics.text
        assert "text/plain" in metrics.headers["content-type"]
        openapi = (await http.get("/openapi.json")).json()
        assert "/threads/{thread_id}/runs/stream" in openapi["paths"]
        assert (await http.get("/docs")).status_code == 200
        assert info["flags"]["crons"] is True and info["features"]["crons"]["scheduler"] is True


async def test_delete_assistant_with_its_threads(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("echo")
    tid = (await client.threads.create())["thread_id"]
    other = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, assistant["assistant_id"], input={"messages": []})
    await client.runs.wait(other, "echo", input={"messages": []})
    await client.assistants.delete(assistant["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    assert (await client.threads.get(other))["status"] == "idle"
