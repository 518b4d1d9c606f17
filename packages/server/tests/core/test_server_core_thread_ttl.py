"""Thread TTL: set on create and patch (the SDKs' shape), the langgraph.json default, shown with
``include=ttl``, validated, and swept within one sweep interval (1 s here) of the deadline, never
while a run is in flight; ``keep_latest`` keeps the thread and its latest checkpoint."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import free_port, fresh_database

from .conftest import KEY_A
from .jobs_support import DEFAULT_TTL_MINUTES, eventually, start_jobs_server, write_project

SWEEP_SECONDS = 1.0
HI = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class TTLServer:
    url: str
    database_url: str


@pytest.fixture(scope="module")
def ttl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TTLServer]:
    project = write_project(tmp_path_factory.mktemp("ttl-project"))
    with fresh_database("cogni_thread_ttl") as db:
        port = free_port()
        proc = start_jobs_server(db, port, project, name="ttl", COGNI_THREAD_TTL_SWEEP_SECONDS=str(SWEEP_SECONDS))
        try:
            yield TTLServer(f"http://127.0.0.1:{port}", db)
        finally:
            proc.stop()


@pytest.fixture
async def client(ttl_server: TTLServer) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=ttl_server.url, api_key=KEY_A)
    try:
        yield c
    finally:
        await c.aclose()


async def _ttl(client: LangGraphClient, thread_id: str) -> dict[str, object]:
    return dict((await client.threads.get(thread_id, include=["ttl"]))["ttl"])  # type: ignore[typeddict-item]


async def _gone_at(client: LangGraphClient, thread_id: str, limit: float) -> datetime:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not await client.threads.search(ids=[thread_id]):
            return datetime.now(UTC)
        await asyncio.sleep(0.1)
    raise AssertionError(f"thread {thread_id} still there after {limit}s")


async def test_ttl_on_create_patch_default_and_include(client: LangGraphClient, ttl_server: TTLServer) -> None:
    tid = (await client.threads.create(ttl=5))["thread_id"]
    ttl = await _ttl(client, tid)
    assert ttl["strategy"] == "delete" and ttl["ttl"] == 5
    assert "ttl" not in await client.threads.get(tid)  # only when asked for
    await client.threads.update(tid, metadata={"a": 1}, ttl={"ttl": 10, "strategy": "keep_latest"})
    ttl = await _ttl(client, tid)
    assert ttl["ttl"] == 10 and ttl["strategy"] == "keep_latest"
    default = (await client.threads.create())["thread_id"]
    assert (await _ttl(client, default))["ttl"] == DEFAULT_TTL_MINUTES  # checkpointer.ttl.default_ttl
    async with httpx.AsyncClient(base_url=ttl_server.url, headers={"x-api-key": KEY_A}) as http:
        r = await http.get(f"/threads/{tid}", params=[("include", "ttl")])  # the JS client repeats the param
        assert r.json()["ttl"]["ttl"] == 10
        assert (await http.get(f"/threads/{tid}", params={"include": "bogus"})).status_code == 422
        for bad in (5, {"ttl": 0}, {"ttl": -1}, {"strategy": "delete"}, {"ttl": 5, "strategy": "bogus"}, {"ttl": "5"}):
            r = await http.post("/threads", json={"ttl": bad})
            assert r.status_code == 422 and "ttl" in r.json()["detail"], (bad, r.text)
            r = await http.patch(f"/threads/{tid}", json={"metadata": {}, "ttl": bad})
            assert r.status_code == 422, bad


async def test_a_thread_a_run_creates_gets_the_default_ttl(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    await client.runs.wait(tid, "echo", input=HI, if_not_exists="create")
    ttl = await _ttl(client, tid)
    assert ttl["ttl"] == DEFAULT_TTL_MINUTES and ttl["strategy"] == "delete" and ttl["expires_at"] is not None


async def test_one_minute_ttl_is_swept_within_one_interval(client: LangGraphClient, ttl_server: TTLServer) -> None:
    tid = (await client.threads.create(ttl=1))["thread_id"]
    await client.runs.wait(tid, "echo", input=HI)  # a run refreshes the deadline
    deadline = datetime.fromisoformat(str((await _ttl(client, tid))["expires_at"]))
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds() - 2.0))
    assert await client.threads.search(ids=[tid])  # not before its deadline
    gone = await _gone_at(client, tid, 10.0)
    assert (gone - deadline).total_seconds() <= SWEEP_SECONDS + 1.0
    with psycopg.connect(ttl_server.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE thread_id = %s", (tid,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (tid,)).fetchone() == (0,)


async def test_a_thread_with_a_live_run_is_never_swept(client: LangGraphClient) -> None:
    tid = (await client.threads.create(ttl=0.05))["thread_id"]  # three seconds
    run = await client.runs.create(tid, "slow", input={"delay": 0.5, "steps": 12})
    await asyncio.sleep(4.5)  # past the deadline, the run still going
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "running"
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    await _gone_at(client, tid, SWEEP_SECONDS + 3.0)


async def test_keep_latest_keeps_the_thread_and_its_last_checkpoint(client: LangGraphClient) -> None:
    tid = (await client.threads.create(ttl={"ttl": 0.05, "strategy": "keep_latest"}))["thread_id"]
    await client.runs.wait(tid, "echo", input=HI)
    await client.runs.wait(tid, "echo", input=HI)
    assert len(await client.threads.get_history(tid, limit=100)) > 1

    async def pruned() -> bool:
        return len(await client.threads.get_history(tid, limit=100)) == 1

    assert await eventually(pruned, 10)
    history = await client.threads.get_history(tid, limit=100)
    assert len(history) == 1 and history[0]["values"]["count"] == 2
    assert (await _ttl(client, tid))["expires_at"] is None
