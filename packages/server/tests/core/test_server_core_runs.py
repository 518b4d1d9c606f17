"""Run lifecycle through the official client: background + join, wait, list, get, delete, cancel,
multitask strategies, after_seconds, batch, on_disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError

from .conftest import Server
from .helpers import wait_status

HI = {"messages": [{"role": "user", "content": "hi"}]}


async def test_background_run_then_join(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input=HI, metadata={"purpose": "test"})
    assert run["status"] in ("pending", "running")
    assert run["metadata"] == {"purpose": "test"}
    assert run["multitask_strategy"] == "enqueue"
    out = await client.runs.join(thread["thread_id"], run["run_id"])
    assert out["count"] == 1
    got = await client.runs.get(thread["thread_id"], run["run_id"])
    assert got["status"] == "success"
    assert got["kwargs"]["input"] == HI


async def test_join_stream_replays_finished_and_follows_live(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={"delay": 0.2, "steps": 3}, stream_mode="updates")
    parts = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"])]
    updates = [p for p in parts if p.event == "updates"]
    assert len(updates) >= 2  # joined while running: live updates arrived
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_wait_returns_final_values(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "echo", input=HI)
    assert out["messages"][-1]["content"] == "echo: hi"
    out2 = await client.runs.wait(thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "x"}]})
    assert out2["count"] == 2 and len(out2["messages"]) == 4


async def test_wait_reports_graph_error(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "failing", input={}, raise_error=False)
    assert out["__error__"]["error"] == "ValueError"
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(thread["thread_id"], "failing", input={}, raise_error=True)


async def test_list_get_delete_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.wait(thread["thread_id"], "echo", input=HI)
    assert first
    await client.runs.wait(thread["thread_id"], "echo", input=HI)
    runs = await client.runs.list(thread["thread_id"])
    assert len(runs) == 2
    assert runs[0]["created_at"] >= runs[1]["created_at"]
    assert len(await client.runs.list(thread["thread_id"], limit=1)) == 1
    assert len(await client.runs.list(thread["thread_id"], status="error")) == 0
    await client.runs.delete(thread["thread_id"], runs[0]["run_id"])
    assert len(await client.runs.list(thread["thread_id"])) == 1
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.get(thread["thread_id"], runs[0]["run_id"])
    assert info.value.response.status_code == 404


async def test_cancel_interrupt_keeps_thread_usable(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.3, "steps": 50})
    await wait_status(client, tid, run["run_id"], {"running"})
    await client.runs.cancel(tid, run["run_id"], wait=True)
    got = await client.runs.get(tid, run["run_id"])
    assert got["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "idle"
    out = await client.runs.wait(tid, "echo", input=HI)
    assert out["count"] == 1


async def test_cancel_rollback_deletes_run_and_its_checkpoints(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "slow", input={"delay": 0, "steps": 1})
    before = await client.threads.get_history(tid, limit=100)
    run = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 50})
    await wait_status(client, tid, run["run_id"], {"running"})
    await asyncio.sleep(0.5)  # let it write a few checkpoints
    await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.get(tid, run["run_id"])
    assert info.value.response.status_code == 404
    after = await client.threads.get_history(tid, limit=100)
    assert [s["checkpoint"]["checkpoint_id"] for s in after] == [s["checkpoint"]["checkpoint_id"] for s in before]


async def test_multitask_reject_answers_409(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 20})
    with pytest.raises(ConflictError):
        await client.runs.create(tid, "echo", input=HI, multitask_strategy="reject")
    await client.runs.cancel(tid, run["run_id"], wait=True)


async def test_multitask_enqueue_runs_in_order(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 2})
    second = await client.runs.create(tid, "slow", input={"delay": 0.01, "steps": 4})
    got = await client.runs.get(tid, second["run_id"])
    assert got["status"] == "pending"
    await client.runs.join(tid, second["run_id"])
    a = await client.runs.get(tid, first["run_id"])
    b = await client.runs.get(tid, second["run_id"])
    assert a["status"] == b["status"] == "success"
    assert a["updated_at"] <= b["updated_at"]


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_multitask_interrupt_and_rollback(client: LangGraphClient, strategy: str) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 50})
    await wait_status(client, tid, first["run_id"], {"running"})
    second = await client.runs.create(tid, "echo", input=HI, multitask_strategy=strategy)  # type: ignore[arg-type]
    out = await client.runs.join(tid, second["run_id"])
    assert out["count"] == 1
    if strategy == "interrupt":
        assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
    else:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await client.runs.get(tid, first["run_id"])
        assert info.value.response.status_code == 404


async def test_after_seconds_delays_start(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    loop = asyncio.get_running_loop()
    start = loop.time()
    run = await client.runs.create(tid, "echo", input=HI, after_seconds=1)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    await client.runs.join(tid, run["run_id"])
    assert loop.time() - start >= 0.9
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_if_not_exists_create(client: LangGraphClient) -> None:
    import uuid

    tid = str(uuid.uuid4())
    out = await client.runs.wait(tid, "echo", input=HI, if_not_exists="create")
    assert out["count"] == 1
    assert (await client.threads.get(tid))["metadata"]["graph_id"] == "echo"
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.wait(str(uuid.uuid4()), "echo", input=HI)
    assert info.value.response.status_code == 404


async def test_stateless_background_and_batch(client: LangGraphClient) -> None:
    run = await client.runs.create(None, "echo", input=HI)
    assert run["run_id"]
    batch = await client.runs.create_batch(
        [{"assistant_id": "echo", "input": HI}, {"assistant_id": "custom", "input": {"n": 1}}]  # type: ignore[typeddict-item]
    )
    assert len(batch) == 2 and all(r["status"] in ("pending", "running", "success") for r in batch)


async def test_bulk_cancel_by_thread(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 50})
    queued = await client.runs.create(tid, "echo", input=HI)
    await client.runs.cancel_many(thread_id=tid, action="interrupt")
    final = await wait_status(client, tid, run["run_id"], {"interrupted"})
    assert final["status"] == "interrupted"
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"


async def test_on_disconnect_cancel_stops_the_run(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run_id = None
    stream: Any = client.runs.stream(
        tid, "slow", input={"delay": 0.2, "steps": 50}, on_disconnect="cancel", stream_mode="updates"
    )
    async for part in stream:
        if part.event == "metadata":
            run_id = part.data["run_id"]
        if part.event == "updates":
            break
    await stream.aclose()
    assert run_id is not None
    final = await wait_status(client, tid, run_id, {"interrupted", "success"})
    assert final["status"] == "interrupted"


async def test_on_disconnect_continue_is_default(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run_id = None
    stream: Any = client.runs.stream(tid, "slow", input={"delay": 0.05, "steps": 6})
    async for part in stream:
        run_id = part.data["run_id"]
        break
    await stream.aclose()
    assert run_id is not None
    final = await wait_status(client, tid, run_id, {"interrupted", "success"})
    assert final["status"] == "success"


async def test_delete_thread_mid_run_stops_it_and_leaves_no_checkpoints(
    client: LangGraphClient, server: Server
) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.1, "steps": 100}, durability="sync")
    await wait_status(client, tid, run["run_id"], {"running"})
    await asyncio.sleep(0.3)
    await client.threads.delete(tid)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.threads.get(tid)
    assert info.value.response.status_code == 404
    remaining = -1
    for _ in range(50):  # the worker notices the cancel and cleans up after itself
        await asyncio.sleep(0.1)
        with psycopg.connect(server.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (tid,)).fetchone()
        remaining = row[0] if row else -1
        if remaining == 0:
            break
    assert remaining == 0


async def test_interrupt_strategy_also_cancels_queued_runs(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "slow", input={"delay": 0.2, "steps": 50})
    await wait_status(client, tid, first["run_id"], {"running"})
    queued = await client.runs.create(tid, "echo", input=HI)
    waiter = asyncio.create_task(client.runs.join(tid, queued["run_id"]))
    await asyncio.sleep(0.2)
    third = await client.runs.create(tid, "echo", input=HI, multitask_strategy="interrupt")
    await asyncio.wait_for(waiter, 10)  # the queued run's joiners are released
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    assert (await client.runs.join(tid, third["run_id"]))["count"] == 1
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
