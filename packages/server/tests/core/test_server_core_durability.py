"""Durability: SIGKILL the server mid-run, restart it on the same database, the run is retried
(attempt + 1) from its last checkpoint with the thread intact; SIGTERM drains in-flight runs."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from testsupport import free_port, fresh_database

from .conftest import KEY_A, start_server

FAST_LEASES = {  # the drain must fit in the lease: 2 < 3 - 0.5
    "COGNI_LEASE_SECONDS": "3",
    "COGNI_HEARTBEAT_SECONDS": "0.5",
    "COGNI_SWEEP_SECONDS": "0.5",
    "COGNI_DRAIN_SECONDS": "2",
}


async def _wait_steps(client: object, tid: str, at_least: int, limit: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        state = await client.threads.get_state(tid)  # type: ignore[attr-defined]
        if len(state["values"].get("done", [])) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"run did not reach {at_least} steps")


@pytest.mark.filterwarnings("ignore:Request failed, attempting reconnect", "ignore:Reconnecting without")
async def test_sigkill_mid_run_then_restart_resumes_from_checkpoint() -> None:
    with fresh_database("cogni_server_core_dur") as db:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(db, port, name="durable-1", **FAST_LEASES)
        client = get_client(url=url, api_key=KEY_A)
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(
                tid, "slow", input={"delay": 0.3, "steps": 8}, durability="sync", stream_resumable=True
            )

            async def follow() -> list[Any]:
                # The official client, joined to the run, rides through the crash: it reconnects to
                # the Location with its Last-Event-ID until the retried run finishes.
                return [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="-1")]

            follower = asyncio.create_task(follow())
            await _wait_steps(client, tid, 3)
            proc.kill()
            proc.stop()
            proc = start_server(db, port, name="durable-2", **FAST_LEASES)
            parts = await asyncio.wait_for(follower, 60)
            got = await client.runs.get(tid, run["run_id"])
            assert got["status"] == "success", got
            state = await client.threads.get_state(tid)
            assert state["values"]["done"] == list(range(8))  # resumed: no step lost, none repeated
            attempts = [p.data["attempt"] for p in parts if p.event == "metadata"]
            assert attempts == [1, 2], [p.event for p in parts]
            assert (await client.threads.get(tid))["status"] == "idle"
            with psycopg.connect(db) as conn:
                row = conn.execute("SELECT attempt FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
            assert row is not None and row[0] == 2
        finally:
            await client.aclose()
            proc.stop()


async def test_sigterm_drains_in_flight_runs() -> None:
    with fresh_database("cogni_server_core_drain") as db:
        port = free_port()
        proc = start_server(db, port, name="drain", **FAST_LEASES)
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "slow", input={"delay": 0.3, "steps": 4})
            queued = await client.runs.create(tid, "slow", input={"delay": 0, "steps": 1})
            await _wait_steps(client, tid, 1)
            code = proc.stop(timeout=30)
            # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM means a clean stop
            assert code in (0, -signal.SIGTERM), proc.log_path.read_text()[-3000:]
            with psycopg.connect(db) as conn:
                row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
                assert row is not None and row[0] == "success"  # the in-flight run finished during the drain
                row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (queued["run_id"],)).fetchone()
                assert row is not None and row[0] == "pending"  # the queued one is left for another instance
        finally:
            await client.aclose()
            proc.stop()


async def test_worker_concurrency_is_bounded() -> None:
    with fresh_database("cogni_server_core_slots") as db:
        port = free_port()
        proc = start_server(db, port, name="one-slot", N_JOBS_PER_WORKER="1")
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        try:
            t1 = (await client.threads.create())["thread_id"]
            t2 = (await client.threads.create())["thread_id"]
            first = await client.runs.create(t1, "slow", input={"delay": 0.3, "steps": 3})
            second = await client.runs.create(t2, "echo", input={"messages": []})
            assert (await client.runs.get(t2, second["run_id"]))["status"] == "pending"  # no free slot
            assert (await client.runs.join(t2, second["run_id"]))["count"] == 1
            a = await client.runs.get(t1, first["run_id"])
            b = await client.runs.get(t2, second["run_id"])
            assert a["status"] == b["status"] == "success"
            assert a["updated_at"] <= b["updated_at"]
        finally:
            await client.aclose()
            proc.stop()
