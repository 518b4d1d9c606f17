"""Scale-out: an API-only process and a workers-only process share Postgres and Redis. Runs created
on the API execute on the worker; events, cancellation and wake-ups cross processes through Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, start_server
from .helpers import wait_status

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def split_api() -> Iterator[str]:
    prefix = f"cogni-test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": REDIS, "COGNI_REDIS_KEY_PREFIX": prefix}
    with fresh_database("cogni_server_core_split") as db:
        worker: ManagedProcess | None = None
        api: ManagedProcess | None = None
        try:
            worker = start_server(db, free_port(), "--workers-only", name="workers-only", **env)
            api_port = free_port()
            api = start_server(db, api_port, "--no-workers", name="api-only", **env)
            yield f"http://127.0.0.1:{api_port}"
        finally:
            for proc in (api, worker):
                if proc is not None:
                    proc.stop()
            r = redis.Redis.from_url(REDIS)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)
            r.close()


@pytest.fixture
async def api(split_api: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=split_api, api_key=KEY_A)
    try:
        yield client
    finally:
        await client.aclose()


async def test_stream_and_wait_through_redis(api: LangGraphClient) -> None:
    tid = (await api.threads.create())["thread_id"]
    parts = [p async for p in api.runs.stream(tid, "custom", input={"n": 2}, stream_mode=["custom", "values"])]
    assert parts[0].event == "metadata"
    assert [p.data for p in parts if p.event == "custom"] == [{"progress": 0}, {"progress": 1}]
    assert parts[-1].data["greeting"] == "hello"
    out = await api.runs.wait(tid, "echo", input={"messages": []})
    assert out["count"] == 1


async def test_cancel_crosses_processes(api: LangGraphClient) -> None:
    tid = (await api.threads.create())["thread_id"]
    run = await api.runs.create(tid, "slow", input={"delay": 0.2, "steps": 50})
    await wait_status(api, tid, run["run_id"], {"running"})
    await api.runs.cancel(tid, run["run_id"], wait=True)
    assert (await api.runs.get(tid, run["run_id"]))["status"] == "interrupted"


async def test_resume_with_redis_event_ids(api: LangGraphClient, split_api: str) -> None:
    tid = (await api.threads.create())["thread_id"]
    run = await api.runs.create(
        tid, "slow", input={"delay": 0.05, "steps": 4}, stream_mode="updates", stream_resumable=True
    )
    await api.runs.join(tid, run["run_id"])
    everything = [p async for p in api.runs.join_stream(tid, run["run_id"], last_event_id="-1")]
    assert everything[0].event == "metadata" and all(p.id for p in everything)
    middle = everything[2].id
    assert middle is not None
    rest = [p async for p in api.runs.join_stream(tid, run["run_id"], last_event_id=middle)]
    assert [p.id for p in rest] == [p.id for p in everything[3:]]
    async with httpx.AsyncClient(base_url=split_api, headers={"x-api-key": KEY_A}) as http:
        r = await http.get(f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "garbage"})
        assert r.status_code == 422
