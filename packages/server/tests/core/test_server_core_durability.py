"""Durability: SIGKILL the server mid-run, restart it on the same database, the run is retried
(attempt + 1) from its last checkpoint with the thread intact; SIGTERM drains in-flight runs."""

from __future__ import annotations

import asyncio
import signal

import psycopg
from langgraph_sdk import get_client

from testsupport import free_port, fresh_database

from .conftest import KEY_A, start_server

FAST_LEASES = {
    "COGNI_LEASE_SECONDS": "2",
    "COGNI_HEARTBEAT_SECONDS": "0.5",
    "COGNI_SWEEP_SECONDS": "0.5",
}


async def _wait_steps(client: object, tid: str, at_least: int, limit: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        state = await client.threads.get_state(tid)  # type: ignore[attr-defined]
        if len(state["values"].get("done", [])) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"run did not reach {at_least} steps")


async def test_sigkill_mid_run_then_restart_resumes_from_checkpoint() -> None:
    with fresh_database("cogni_server_core_dur") as db:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(db, port, name="durable-1", **FAST_LEASES)
        client = get_client(url=url, api_key=KEY_A)
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "slow", input={"delay": 0.3, "steps": 8}, durability="sync")
            await _wait_steps(client, tid, 3)
            proc.kill()
            proc.stop()
            proc = start_server(db, port, name="durable-2", **FAST_LEASES)
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                got = await client.runs.get(tid, run["run_id"])
                if got["status"] == "success":
                    break
                assert got["status"] in ("pending", "running"), got
                assert asyncio.get_running_loop().time() < deadline, "run was not recovered"
                await asyncio.sleep(0.2)
            state = await client.threads.get_state(tid)
            assert state["values"]["done"] == list(range(8))  # resumed: no step lost, none repeated
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
            await _wait_steps(client, tid, 1)
            code = proc.stop(timeout=30)
            # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM means a clean stop
            assert code in (0, -signal.SIGTERM), proc.log_path.read_text()[-3000:]
            with psycopg.connect(db) as conn:
                row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
            assert row is not None and row[0] == "success"
        finally:
            await client.aclose()
            proc.stop()
