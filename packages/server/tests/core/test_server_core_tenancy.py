"""Tenancy: another tenant's threads, runs and assistants answer 404 everywhere, search included."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from .conftest import Server

HI = {"messages": [{"role": "user", "content": "hi"}]}


async def test_cross_tenant_resources_are_invisible(client: LangGraphClient, client_b: LangGraphClient) -> None:
    tag = uuid.uuid4().hex
    tid = (await client.threads.create(metadata={"tag": tag}))["thread_id"]
    run = await client.runs.create(tid, "echo", input=HI)
    await client.runs.join(tid, run["run_id"])
    mine = await client.assistants.create("echo", metadata={"tag": tag})
    aid = mine["assistant_id"]

    attempts = [
        lambda: client_b.threads.get(tid),
        lambda: client_b.threads.update(tid, metadata={"x": 1}),
        lambda: client_b.threads.delete(tid),
        lambda: client_b.threads.copy(tid),
        lambda: client_b.threads.get_state(tid),
        lambda: client_b.threads.update_state(tid, {"count": 5}),
        lambda: client_b.threads.get_history(tid),
        lambda: client_b.runs.list(tid),
        lambda: client_b.runs.get(tid, run["run_id"]),
        lambda: client_b.runs.join(tid, run["run_id"]),
        lambda: client_b.runs.delete(tid, run["run_id"]),
        lambda: client_b.runs.create(tid, "echo", input=HI),
        lambda: client_b.runs.wait(tid, "echo", input=HI),
        lambda: client_b.assistants.get(aid),
        lambda: client_b.assistants.update(aid, metadata={"x": 1}),
        lambda: client_b.assistants.delete(aid),
        lambda: client_b.assistants.get_versions(aid),
        lambda: client_b.assistants.get_schemas(aid),
    ]
    for attempt in attempts:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await attempt()
        assert info.value.response.status_code == 404, info.value.response.text
    assert await client_b.threads.search(metadata={"tag": tag}) == []
    assert await client_b.threads.count(metadata={"tag": tag}) == 0
    assert await client_b.assistants.search(metadata={"tag": tag}) == []
    assert await client_b.assistants.count(metadata={"tag": tag}) == 0
    assert (await client_b.threads.prune([tid]))["pruned_count"] == 0
    # a tenant cannot claim another tenant's thread id either
    with pytest.raises(NotFoundError):
        await client_b.threads.create(thread_id=tid, if_exists="do_nothing")
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client_b.runs.wait(tid, "echo", input=HI, if_not_exists="create")
    assert info.value.response.status_code == 404
    # ... and the owner still sees everything intact
    assert (await client.threads.get(tid))["values"]["count"] == 1
    assert (await client.assistants.get(aid))["assistant_id"] == aid
    # system assistants are shared
    assert (await client_b.assistants.get("echo"))["graph_id"] == "echo"


async def test_missing_or_wrong_api_key_is_401(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/threads", json={})
        assert r.status_code == 401 and r.json()["detail"]
        r = await http.post("/threads", json={}, headers={"x-api-key": "nope"})
        assert r.status_code == 401
    anon = get_client(url=server.url, api_key=None)
    try:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await anon.threads.create()
        assert info.value.response.status_code == 401
    finally:
        await anon.aclose()
