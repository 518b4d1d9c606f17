"""Scale-out with Redis: any instance serves any thread's event stream; a run whose worker dies gets
one terminal after the sweeper re-queues or fails it; the numbering survives Redis losing the log.
A second module-less case: an API-only server (nothing ever runs) where a pending run is cancelled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import redis
from langgraph_sdk import get_client

from packages.server.tests.core.conftest import KEY_A, start_server
from testsupport import ManagedProcess, free_port, fresh_database

from .helpers import THREAD_PROJECT, command, http, lifecycle, new_thread, open_stream, start

pytestmark = pytest.mark.integration
REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Pair:
    a: str
    b: str
    database_url: str
    env: dict[str, str]
    prefix: str


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    prefix = f"cogni-ts-{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": REDIS,
        "COGNI_REDIS_KEY_PREFIX": prefix,
        "COGNI_LEASE_SECONDS": "2",
        "COGNI_HEARTBEAT_SECONDS": "0.5",
        "COGNI_SWEEP_SECONDS": "0.5",
        "COGNI_MAX_ATTEMPTS": "2",
        # the server refuses a drain that outlasts lease - heartbeat (a lease could lapse mid-drain)
        "COGNI_DRAIN_SECONDS": "1",
    }
    with fresh_database("cogni_thread_stream_redis") as db:
        procs: list[ManagedProcess] = []
        try:
            ports = [free_port(), free_port()]
            for name, port in zip(("ts-a", "ts-b"), ports, strict=True):
                procs.append(start_server(db, port, name=name, project=THREAD_PROJECT, **env))
            yield Pair(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", db, env, prefix)
        finally:
            for proc in procs:
                proc.stop()
            r = redis.Redis.from_url(REDIS)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)
            r.close()


async def test_another_instance_serves_the_stream(pair: Pair) -> None:
    async with http(pair.a) as a, http(pair.b) as b:
        tid = new_thread()
        on_b = await open_stream(b, tid)
        await start(a, tid, "subgrapher", {"messages": [{"role": "user", "content": "hi"}]})  # executes on A
        await on_b.terminals(1)
        on_a = await open_stream(a, tid, since=0)
        await on_a.terminals(1)
        assert on_a.frames == on_b.frames and any(e["method"] == "messages" for e in on_b.events)
        for s in (on_a, on_b):
            await s.close()
        # the official client attached on B to a run started on A
        tid = new_thread()
        await start(a, tid, "slower", {"ticks": 8})
        client = get_client(url=pair.b, api_key=KEY_A)
        try:

            async def attach() -> list[list[str]]:
                async with client.threads.stream(tid, assistant_id="slower") as thread:
                    await thread.output
                    return [v.get("log", []) async for v in thread.values]

            seen = await asyncio.wait_for(attach(), 30)
            assert seen[-1] == ["slow-done"]
        finally:
            await client.aclose()


async def test_a_run_whose_worker_died_ends_once(pair: Pair) -> None:
    port = free_port()
    doomed = start_server(pair.database_url, port, name="ts-c", project=THREAD_PROJECT, **pair.env)
    try:
        async with http(f"http://127.0.0.1:{port}") as c, http(pair.b) as b:
            tid = new_thread()
            watch = await open_stream(b, tid, channels=["lifecycle", "custom"])
            run_id = await start(c, tid, "slower", {"ticks": 30})  # executes on the doomed instance
            await watch.wait_for(lambda evs: any(e["method"] == "custom" for e in evs))
            doomed.kill()
            await watch.terminals(1, limit=40)
            roots = lifecycle(watch.events)
            assert [d["event"] for d in roots] == ["running", "running", "completed"]  # retried elsewhere
            assert {d["run_id"] for d in roots} == {run_id}
            await asyncio.sleep(1.0)
            assert len(lifecycle(watch.events)) == 3
            await watch.close()
    finally:
        doomed.stop()


async def test_the_sweeper_giving_up_ends_the_run(pair: Pair) -> None:
    async with http(pair.b) as b:
        tid = (await b.post("/threads", json={})).json()["thread_id"]
        watch = await open_stream(b, tid, channels=["lifecycle"])
        run_id = str(uuid.uuid4())
        with psycopg.connect(pair.database_url, autocommit=True) as conn:  # a run whose worker vanished
            conn.execute(
                "INSERT INTO runs (run_id, thread_id, assistant_id, graph_id, owner, status, attempt, worker_id,"
                " lease_expires_at) VALUES (%s, %s, %s, 'trivial', 'tenant-a', 'running', 2, 'ghost', now())",
                (run_id, tid, str(uuid.uuid4())),
            )
        await watch.terminals(1, limit=20)
        (end,) = lifecycle(watch.events)
        assert (end["event"], end["code"], end["run_id"]) == ("failed", "worker_lost", run_id)
        await watch.close()


async def test_numbering_survives_redis_losing_the_log(pair: Pair) -> None:
    async with http(pair.a) as a:
        tid = new_thread()
        first = await open_stream(a, tid, channels=["lifecycle"])
        await start(a, tid, "trivial", {"log": []})
        await first.terminals(1)
        top = first.events[-1]["seq"]
        await first.close()
        r = redis.Redis.from_url(REDIS)
        r.delete(*r.keys(f"{pair.prefix}:tl:{tid}*"))
        r.close()
        reply = await command(a, tid, "run.start", {"assistant_id": "trivial", "input": {"log": []}})
        assert reply["meta"]["applied_through_seq"] >= top
        again = await open_stream(a, tid, channels=["lifecycle"], since=top)
        await again.terminals(1)
        assert all(e["seq"] > top for e in again.events)
        await again.close()


async def test_cancelling_a_pending_run_ends_the_session() -> None:
    with fresh_database("cogni_thread_stream_pending") as db:
        port = free_port()
        proc = start_server(db, port, "--no-workers", name="ts-api-only", project=THREAD_PROJECT)
        url = f"http://127.0.0.1:{port}"
        client = get_client(url=url, api_key=KEY_A)
        try:

            async def flow() -> None:
                async with client.threads.stream(assistant_id="trivial") as thread:
                    run = await thread.run.start(input={"log": []})  # nothing will ever claim it
                    waiting = asyncio.ensure_future(thread.output)
                    await asyncio.sleep(0.5)
                    assert not waiting.done()
                    await client.runs.cancel(thread.thread_id, run["run_id"])
                    with pytest.raises(RuntimeError, match="Run errored: Run cancelled before it started"):
                        await waiting

            await asyncio.wait_for(flow(), 30)
        finally:
            await client.aclose()
            proc.stop()
