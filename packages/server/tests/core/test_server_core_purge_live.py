"""Tenant purge while the tenant's run is still executing, killed mid-way: the run's writes are
refused while the purge is in progress (the fence), and after ``kill -9`` of the server in the
middle of the purge a restarted server's sweeper finishes it, leaving no row of the tenant."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from testsupport import ManagedProcess, free_port, fresh_database

from .conftest import KEY_A, KEY_B, start_server
from .purge_support import HI, OPERATOR_TOKEN, PURGE_PROJECT, Known, store_label, tenant_rows, wait_for

LIVE_ENV = {
    "COGNI_OPERATOR_TOKEN": OPERATOR_TOKEN,
    "COGNI_PURGE_STOP_SECONDS": "30",  # the pass waits for the stubborn run: the kill lands in that wait
    "COGNI_LEASE_SECONDS": "3",  # after the kill the dead worker's run is back in the queue soon
    "COGNI_HEARTBEAT_SECONDS": "1",
    "COGNI_DRAIN_SECONDS": "1",
    "COGNI_SWEEP_SECONDS": "0.5",
}
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("cogni_purge_live") as db:
        yield db


def _one(conn: psycopg.Connection[Any], sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


async def test_purge_fences_a_live_run_and_finishes_after_a_crash(database: str) -> None:
    port = free_port()
    proc: ManagedProcess = start_server(database, port, project=PURGE_PROJECT, name="purge-live", **LIVE_ENV)
    url = f"http://127.0.0.1:{port}"
    a, b = get_client(url=url, api_key=KEY_A), get_client(url=url, api_key=KEY_B)
    try:
        for client, tag in ((a, "a"), (b, "b")):
            thread = await client.threads.create(metadata={"tag": tag})
            await client.runs.wait(thread["thread_id"], "echo", input=HI)
            await client.store.put_item(["profile"], "name", {"name": tag})
            await client.crons.create("echo", schedule="0 0 1 1 *", input=HI)
        stubborn_thread = (await a.threads.create())["thread_id"]
        run = await a.runs.create(stubborn_thread, "stubborn", input={"steps": 40, "delay": 0.25})
        label = store_label("tenant-a")
        db = psycopg.connect(database, autocommit=True)
        stubborn_items = "SELECT count(*) FROM store WHERE prefix = %s"
        wait_for(lambda: _one(db, stubborn_items, label + ".stubborn"), "the stubborn run's first store write")
        known_a, known_b = Known("tenant-a").refresh(db), Known("tenant-b").refresh(db)
        before_b = tenant_rows(db, known_b)

        async def purge() -> httpx.Response:
            async with httpx.AsyncClient(timeout=120) as http:
                return await http.post(f"{url}/admin/tenants/tenant-a/purge", headers=AUTH)

        request = asyncio.ensure_future(purge())

        def mid_way() -> bool:
            job = _one(db, "SELECT status FROM tenant_purges WHERE tenant = 'tenant-a'")
            threads = _one(db, "SELECT count(*) FROM threads WHERE owner = 'tenant-a'")
            items = _one(db, "SELECT count(*) FROM store WHERE prefix LIKE %s", label + "%")
            # only the stubborn run's thread is left, the store items are gone: the pass waits for the run
            return job == "in_progress" and threads == 1 and items == 0

        await asyncio.to_thread(wait_for, mid_way, "the purge to be mid-way")
        assert not request.done()  # still waiting for the stubborn run to stop
        assert _one(db, "SELECT status FROM runs WHERE run_id = %s", run["run_id"]) == "running"
        # the fence: the run keeps executing and writing, the database refuses every write
        await asyncio.sleep(1.5)  # several of its steps
        assert _one(db, "SELECT status FROM runs WHERE run_id = %s", run["run_id"]) == "running"
        assert _one(db, "SELECT count(*) FROM store WHERE prefix LIKE %s", label + "%") == 0
        # ... and so does it refuse the tenant's own API writes, with a 409 that says why
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await a.threads.create()
        assert refused.value.response.status_code == 409
        assert "being purged" in refused.value.response.json()["detail"]
        # the other tenant is not affected
        assert (await b.threads.create())["thread_id"]

        proc.kill()  # kill -9 in the middle of the purge
        with contextlib.suppress(Exception):
            await request
        assert _one(db, "SELECT status FROM tenant_purges WHERE tenant = 'tenant-a'") == "in_progress"
        assert _one(db, "SELECT count(*) FROM threads WHERE owner = 'tenant-a'") == 1

        # a restarted server's purge sweeper finishes it (nobody calls the route again)
        port = free_port()
        proc = start_server(database, port, project=PURGE_PROJECT, name="purge-live-2", **LIVE_ENV)
        url = f"http://127.0.0.1:{port}"

        def finished() -> dict[str, Any] | None:
            got = httpx.get(f"{url}/admin/tenants/tenant-a/purge", headers=AUTH, timeout=10).json()
            return got if got["status"] == "done" else None

        result = await asyncio.to_thread(wait_for, finished, "the sweeper to finish the purge", 60.0)
        assert result["counts"]["threads"] == len(known_a.thread_ids)
        # the profile item and the stubborn run's writes from before the purge (none from after it)
        assert result["counts"]["crons"] == 1 and result["counts"]["store"] >= 2

        known_a.refresh(db)
        after = tenant_rows(db, known_a)
        assert after == dict.fromkeys(after, 0), f"rows of the purged tenant remain: {after}"
        await asyncio.sleep(1.0)  # nothing is written back later either
        assert tenant_rows(db, known_a) == after
        after_b = tenant_rows(db, known_b)
        assert after_b["threads"] == before_b["threads"] + 1  # the thread b made during the purge
        assert {t: n for t, n in after_b.items() if t != "threads"} == {
            t: n for t, n in before_b.items() if t != "threads"
        }
        db.close()

        a2 = get_client(url=url, api_key=KEY_A)
        try:  # the fence is down: the tenant may start afresh
            fresh = await a2.threads.create()
            assert uuid.UUID(fresh["thread_id"])
        finally:
            await a2.aclose()
    finally:
        await a.aclose()
        await b.aclose()
        proc.stop()


async def test_a_run_that_does_not_stop_keeps_the_purge_in_progress_until_it_has(database: str) -> None:
    port = free_port()
    env = {**LIVE_ENV, "COGNI_PURGE_STOP_SECONDS": "1"}
    proc = start_server(database, port, project=PURGE_PROJECT, name="purge-stubborn", **env)
    url = f"http://127.0.0.1:{port}"
    a = get_client(url=url, api_key=KEY_A)
    try:
        thread = (await a.threads.create())["thread_id"]
        run = await a.runs.create(thread, "stubborn", input={"steps": 16, "delay": 0.25})
        with psycopg.connect(database, autocommit=True) as db:
            label = store_label("tenant-a") + ".stubborn"
            wait_for(lambda: _one(db, "SELECT count(*) FROM store WHERE prefix = %s", label), "a first store write")
            known = Known("tenant-a").refresh(db)
        async with httpx.AsyncClient(timeout=60) as http:
            first = (await http.post(f"{url}/admin/tenants/tenant-a/purge", headers=AUTH)).json()
            assert first["status"] == "in_progress"  # the run ignored the cancel and still runs
            assert first["counts"]["threads"] == 0 and first["counts"]["store"] >= 1
            deadline = asyncio.get_running_loop().time() + 30
            while (await http.post(f"{url}/admin/tenants/tenant-a/purge", headers=AUTH)).json()["status"] != "done":
                assert asyncio.get_running_loop().time() < deadline, "the purge never finished"
        with psycopg.connect(database, autocommit=True) as db:
            after = tenant_rows(db, known.refresh(db))
            assert after == dict.fromkeys(after, 0), f"rows of the purged tenant remain: {after}"
            await asyncio.sleep(1.5)  # the run has ended: nothing of it is still writing
            assert tenant_rows(db, known) == after
            assert _one(db, "SELECT count(*) FROM runs WHERE run_id = %s", run["run_id"]) == 0
    finally:
        await a.aclose()
        proc.stop()
