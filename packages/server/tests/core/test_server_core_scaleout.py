"""Scale-out: an API-only process and a workers-only process share Postgres and Redis; a run created
on the API is executed by the worker and its events stream back to the client through Redis."""

from __future__ import annotations

import uuid

import redis
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, start_server

REDIS = "redis://127.0.0.1:6379/0"


async def test_api_and_worker_processes_split() -> None:
    prefix = f"cogni-test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": REDIS, "COGNI_REDIS_KEY_PREFIX": prefix}
    with fresh_database("cogni_server_core_split") as db:
        worker: ManagedProcess | None = None
        api: ManagedProcess | None = None
        try:
            worker = start_server(db, free_port(), "--workers-only", name="workers-only", **env)
            api_port = free_port()
            api = start_server(db, api_port, "--no-workers", name="api-only", **env)
            client = get_client(url=f"http://127.0.0.1:{api_port}", api_key=KEY_A)
            try:
                tid = (await client.threads.create())["thread_id"]
                parts = [
                    p async for p in client.runs.stream(tid, "custom", input={"n": 2}, stream_mode=["custom", "values"])
                ]
                assert parts[0].event == "metadata"
                assert [p.data for p in parts if p.event == "custom"] == [{"progress": 0}, {"progress": 1}]
                assert parts[-1].data["greeting"] == "hello"
                out = await client.runs.wait(tid, "echo", input={"messages": []})
                assert out["count"] == 1
            finally:
                await client.aclose()
        finally:
            for proc in (api, worker):
                if proc is not None:
                    proc.stop()
            r = redis.Redis.from_url(REDIS)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)
            r.close()
