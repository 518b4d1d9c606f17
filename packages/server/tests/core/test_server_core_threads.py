"""Threads through the official client: create, search, count, get, patch, delete, copy, prune,
state get/update (as_node, checkpoint), history, and the thread-level stream."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from .conftest import KEY_A, Server

HI = {"messages": [{"role": "user", "content": "hi"}]}


async def test_create_with_id_and_if_exists(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=tid, metadata={"owner": "me"})
    assert thread["thread_id"] == tid and thread["status"] == "idle" and thread["metadata"] == {"owner": "me"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid)
    same = await client.threads.create(thread_id=tid, if_exists="do_nothing", metadata={"other": 1})
    assert same["metadata"] == {"owner": "me"}


async def test_search_filters_pagination_and_count(client: LangGraphClient, server: Server) -> None:
    tag = uuid.uuid4().hex
    ids = [(await client.threads.create(metadata={"tag": tag, "i": i}))["thread_id"] for i in range(5)]
    await client.runs.wait(ids[0], "echo", input=HI)
    found = await client.threads.search(metadata={"tag": tag}, limit=10)
    assert {t["thread_id"] for t in found} == set(ids)
    assert [t["thread_id"] for t in found] == list(reversed(ids))  # created_at desc by default
    asc = await client.threads.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc", limit=2)
    assert [t["thread_id"] for t in asc] == ids[:2]
    assert await client.threads.count(metadata={"tag": tag}) == 5
    by_values = await client.threads.search(metadata={"tag": tag}, values={"count": 1})
    assert [t["thread_id"] for t in by_values] == [ids[0]]
    assert by_values[0]["values"]["count"] == 1
    by_ids = await client.threads.search(ids=ids[1:3])
    assert {t["thread_id"] for t in by_ids} == set(ids[1:3])
    idle = await client.threads.search(metadata={"tag": tag}, status="idle")
    assert len(idle) == 5
    selected = await client.threads.search(metadata={"tag": tag}, select=["thread_id", "status"], limit=1)
    assert set(selected[0]) == {"thread_id", "status"}
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.post("/threads/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 0})
        assert r.headers["X-Pagination-Total"] == "5"
        assert r.headers["X-Pagination-Next"] == "2"
        r = await http.post("/threads/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 4})
        assert "X-Pagination-Next" not in r.headers


async def test_get_patch_delete(client: LangGraphClient) -> None:
    tid = (await client.threads.create(metadata={"a": 1}))["thread_id"]
    patched = await client.threads.update(tid, metadata={"b": 2})
    assert patched["metadata"] == {"a": 1, "b": 2}
    assert (await client.threads.get(tid))["metadata"] == {"a": 1, "b": 2}
    await client.runs.wait(tid, "echo", input=HI)
    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    with pytest.raises(NotFoundError):
        await client.threads.delete(tid)


async def test_copy_keeps_state_and_history(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input=HI)
    copy = await client.threads.copy(tid)
    assert copy["thread_id"] != tid
    state = await client.threads.get_state(copy["thread_id"])
    assert state["values"]["count"] == 1
    out = await client.runs.wait(copy["thread_id"], "echo", input=HI)
    assert out["count"] == 2
    assert (await client.threads.get_state(tid))["values"]["count"] == 1


async def test_prune_delete_and_keep_latest(client: LangGraphClient) -> None:
    a = (await client.threads.create())["thread_id"]
    b = (await client.threads.create())["thread_id"]
    await client.runs.wait(a, "echo", input=HI)
    await client.runs.wait(b, "echo", input=HI)
    assert len(await client.threads.get_history(b, limit=50)) > 1
    assert (await client.threads.prune([a]))["pruned_count"] == 1
    with pytest.raises(NotFoundError):
        await client.threads.get(a)
    assert (await client.threads.prune([b], strategy="keep_latest"))["pruned_count"] == 1
    history = await client.threads.get_history(b, limit=50)
    assert len(history) == 1 and history[0]["values"]["count"] == 1


async def test_state_update_as_node_and_at_checkpoint(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    empty = await client.threads.get_state(tid)
    assert empty["values"] == {} and empty["next"] == []
    await client.runs.wait(tid, "echo", input=HI)
    state = await client.threads.get_state(tid)
    result = await client.threads.update_state(tid, {"count": 41}, as_node="respond")
    assert result["checkpoint"]["checkpoint_id"]
    new_state = await client.threads.get_state(tid)
    assert new_state["values"]["count"] == 41
    assert new_state["metadata"]["source"] == "update"
    assert (await client.threads.get(tid))["values"]["count"] == 41
    old = await client.threads.get_state(tid, checkpoint_id=state["checkpoint"]["checkpoint_id"])
    assert old["values"]["count"] == 1
    old2 = await client.threads.get_state(tid, checkpoint=state["checkpoint"])
    assert old2["values"]["count"] == 1
    only = await client.threads.get_state(tid, select=["values.count"])  # type: ignore[arg-type]
    assert only == {"values": {"count": 41}}


async def test_history_get_and_post(client: LangGraphClient, server: Server) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input=HI)
    await client.runs.wait(tid, "echo", input=HI)
    history = await client.threads.get_history(tid, limit=100)
    steps = [s["metadata"]["step"] for s in history]
    assert steps == sorted(steps, reverse=True)
    assert len(await client.threads.get_history(tid, limit=2)) == 2
    inputs = await client.threads.get_history(tid, metadata={"source": "input"})
    assert len(inputs) == 2
    before = await client.threads.get_history(tid, before=history[1]["checkpoint"])
    assert before[0]["checkpoint"]["checkpoint_id"] == history[2]["checkpoint"]["checkpoint_id"]
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.get(f"/threads/{tid}/history", params={"limit": 3})
        assert r.status_code == 200 and len(r.json()) == 3


async def test_thread_stream_sees_runs(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    seen: list[str] = []

    async def listen() -> None:
        async for part in await client.threads.join_stream(tid):
            seen.append(part.event)
            if part.event == "values" and seen.count("values") >= 2:
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    await client.runs.wait(tid, "echo", input=HI)
    await asyncio.wait_for(listener, 10)
    assert "metadata" in seen and "values" in seen
