"""No run stuck in ``running`` (issue 12): a Postgres blip mid-run retries the run instead of failing
it, and an attempt that fails before its graph starts (the first publish) still ends its row."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from testsupport import ADMIN_URL, free_port, fresh_database

from .conftest import KEY_A
from .faults_support import TcpProxy, start_faults_server
from .test_server_core_faults_drain import ends, forks, wait_for

REDIS_PORT = 6379


def terminate_backends(database_url: str) -> int:
    """What a Postgres restart does to the server's connections: every one of them dies."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


async def get_run(client: LangGraphClient, tid: str, run_id: str) -> dict[str, object]:
    """A client following the contract: 503 (the database went away under the request) is retried."""
    for _ in range(20):
        try:
            return dict(await client.runs.get(tid, run_id))
        except APIStatusError as exc:
            if exc.status_code != 503:
                raise
            assert exc.response.headers.get("retry-after") == "1"
            await asyncio.sleep(0.2)
    raise AssertionError("the server kept answering 503")


async def wait_terminal(client: LangGraphClient, tid: str, run_id: str, limit: float = 60) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + limit
    while (run := await get_run(client, tid, run_id))["status"] in ("pending", "running"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {limit}s")
        await asyncio.sleep(0.2)
    return run


async def test_postgres_connections_killed_mid_run_retry_the_run(tmp_path: Path) -> None:
    record = tmp_path / "pg.log"
    env = {
        "FAULTS_RECORD_FILE": str(record),
        "COGNI_LEASE_SECONDS": "3",
        "COGNI_HEARTBEAT_SECONDS": "0.5",
        "COGNI_DRAIN_SECONDS": "1",
        "COGNI_SWEEP_SECONDS": "0.5",
        "COGNI_POLL_SECONDS": "0.3",
    }
    steps = 10
    with fresh_database("cogni_server_core_pgblip") as db:
        port = free_port()
        proc = start_faults_server(db, port, name="pg-blip", **env)
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(
                tid, "recorder", input={"delay": 0.3, "steps": steps}, durability="sync", stream_resumable=True
            )
            follower = asyncio.create_task(_follow(client, tid, run["run_id"]))
            await wait_for(lambda: ends(record) >= 2, 20, "two steps")
            assert terminate_backends(db) > 0
            await wait_for(lambda: ends(record) >= 4, 20, "two more steps")
            assert terminate_backends(db) > 0
            got = await wait_terminal(client, tid, run["run_id"])
            assert got["status"] == "success", (got, proc.output()[-4000:])
            state = await client.threads.get_state(tid)
            assert state["values"]["done"] == list(range(steps))
            assert (await client.threads.get(tid))["status"] == "idle"
            events = await asyncio.wait_for(follower, 30)  # the stream ended, it did not hang
            assert events[-1] != "error", events
            assert forks(db, tid) == []
            again = await client.runs.wait(tid, "recorder", input={"delay": 0.01, "steps": steps + 1})
            assert again["done"] == list(range(steps + 1))  # the thread is not blocked
        finally:
            await client.aclose()
            proc.stop()


async def _follow(client: LangGraphClient, tid: str, run_id: str) -> list[str]:
    return [part.event async for part in client.runs.join_stream(tid, run_id, last_event_id="-1")]


async def test_a_failed_first_publish_leaves_no_running_row() -> None:
    proxy = TcpProxy(REDIS_PORT)
    prefix = f"cogni-faults-{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": f"redis://{proxy.url_host_port}/0",
        "COGNI_REDIS_KEY_PREFIX": prefix,
        "COGNI_BROKER_OUTAGE_SECONDS": "2",
        "COGNI_LEASE_SECONDS": "3",
        "COGNI_HEARTBEAT_SECONDS": "0.5",
        "COGNI_DRAIN_SECONDS": "1",
    }
    try:
        with fresh_database("cogni_server_core_pubfail") as db:
            port = free_port()
            proc = start_faults_server(db, port, name="publish-fails", **env)
            client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
            try:
                tid = (await client.threads.create())["thread_id"]
                proxy.cut()  # Redis unreachable: the run's first event cannot be written
                run = await client.runs.create(tid, "recorder", input={"delay": 0.01, "steps": 1})
                got = await wait_terminal(client, tid, run["run_id"], limit=30)
                assert got["status"] == "error", got
                assert (await client.threads.get(tid))["status"] == "error"
                with psycopg.connect(db) as conn:
                    row = conn.execute("SELECT attempt FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
                # ended by the attempt that failed, not found later by the sweeper (lease lapsed,
                # re-queued, failed again, ... until COGNI_MAX_ATTEMPTS)
                assert row == (1,)
                proxy.restore()  # the thread is not blocked: the next run works
                again = await client.runs.wait(tid, "recorder", input={"delay": 0.01, "steps": 1})
                assert again["done"] == [0], (again, proc.output()[-3000:])
            finally:
                await client.aclose()
                proc.stop()
    finally:
        proxy.close()
        _delete_keys(prefix)


def _delete_keys(prefix: str) -> None:
    import redis

    r = redis.Redis(port=REDIS_PORT)
    keys = list(r.scan_iter(match=f"{prefix}*"))
    if keys:
        r.delete(*keys)
    r.close()
