"""The run queue's SQL, called directly against a real Postgres: claim, leases, sweep, fenced finish,
per-thread exclusivity and the multitask rules of run creation. Seconds, no server process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from cogni_server.errors import Conflict, NotFound
from cogni_server.storage import queue, run_end, runs, threads

from .queue_support import LEASE, TENANT, claim, enqueue, make_thread, new_run, status


async def test_claim_takes_the_oldest_pending_run_of_each_free_thread(pool: AsyncConnectionPool[Any]) -> None:
    t1, t2 = await make_thread(pool), await make_thread(pool)
    first = await enqueue(pool, t1)
    second = await enqueue(pool, t1)
    other = await enqueue(pool, t2)
    claimed = {r["run_id"] for r in await claim(pool, "w1")}
    assert first["run_id"] in claimed and other["run_id"] in claimed
    assert second["run_id"] not in claimed  # its thread is busy with the first
    assert await status(pool, second["run_id"]) == "pending"
    assert second["run_id"] not in {r["run_id"] for r in await claim(pool, "w1")}


async def test_claim_respects_the_delay_and_the_limit(pool: AsyncConnectionPool[Any]) -> None:
    delayed = await enqueue(pool, await make_thread(pool), after=3600)
    due = [await enqueue(pool, await make_thread(pool)) for _ in range(3)]
    claimed = await claim(pool, "w-limit", limit=2)
    assert len(claimed) == 2
    assert delayed["run_id"] not in {r["run_id"] for r in claimed}
    rest = {r["run_id"] for r in await claim(pool, "w-limit")}
    assert delayed["run_id"] not in rest
    assert {d["run_id"] for d in due} <= {r["run_id"] for r in claimed} | rest


async def test_concurrent_claimers_never_take_the_same_run(pool: AsyncConnectionPool[Any]) -> None:
    made = [await enqueue(pool, await make_thread(pool)) for _ in range(12)]
    results = await asyncio.gather(*(claim(pool, f"w{i}", limit=4) for i in range(4)))
    ids = [r["run_id"] for batch in results for r in batch]
    assert len(ids) == len(set(ids)), "a run was claimed twice"
    for m in made:  # every run is either claimed by exactly one worker or still waiting
        assert (m["run_id"] in ids) != (await status(pool, m["run_id"]) == "pending")


async def test_one_running_run_per_thread_is_enforced_by_the_database(pool: AsyncConnectionPool[Any]) -> None:
    tid = await make_thread(pool)
    a, b = await enqueue(pool, tid), await enqueue(pool, tid)
    async with pool.connection() as conn:
        await conn.execute("UPDATE runs SET status = 'running', worker_id = 'x' WHERE run_id = %s", (a["run_id"],))
        with pytest.raises(UniqueViolation):
            await conn.execute("UPDATE runs SET status = 'running', worker_id = 'y' WHERE run_id = %s", (b["run_id"],))


async def test_heartbeat_renews_only_the_live_runs_it_names(pool: AsyncConnectionPool[Any]) -> None:
    live = await enqueue(pool, await make_thread(pool))
    stale = await enqueue(pool, await make_thread(pool))  # still ours in the table, no longer executing
    theirs = await enqueue(pool, await make_thread(pool))  # taken over by another worker
    async with pool.connection() as conn:
        for run, worker in ((live, "hb-mine"), (stale, "hb-mine"), (theirs, "hb-theirs")):
            await conn.execute(
                "UPDATE runs SET status = 'running', worker_id = %s, lease_expires_at = now() WHERE run_id = %s",
                (worker, run["run_id"]),
            )
        renewed = await queue.heartbeat(conn, "hb-mine", [str(live["run_id"]), str(theirs["run_id"])], LEASE)
        assert renewed == {str(live["run_id"])}  # what is not returned is no longer ours to run
        cur = await conn.execute(
            "SELECT run_id, lease_expires_at > now() + interval '20 seconds' AS renewed FROM runs"
            " WHERE run_id = ANY(%s)",
            ([live["run_id"], stale["run_id"], theirs["run_id"]],),
        )
        rows = {r["run_id"]: r["renewed"] for r in await cur.fetchall()}
        assert await queue.heartbeat(conn, "hb-mine", [], LEASE) == set()
    assert rows == {live["run_id"]: True, stale["run_id"]: False, theirs["run_id"]: False}


async def test_sweep_requeues_lapsed_leases_then_gives_up(pool: AsyncConnectionPool[Any]) -> None:
    tid = await make_thread(pool)
    run = await enqueue(pool, tid)
    for attempt in (1, 2):
        [claimed] = [r for r in await claim(pool, "dead-worker") if r["run_id"] == run["run_id"]]
        assert claimed["attempt"] == attempt
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = %s", (run["run_id"],)
            )
            swept = await queue.sweep(conn, max_attempts=2)
        mine = [s for s in swept if s["run_id"] == run["run_id"]]
        assert mine and mine[0]["status"] == ("pending" if attempt == 1 else "error")
    async with pool.connection() as conn:
        assert (await threads.get(conn, TENANT, tid))["status"] == "error"


async def test_sweep_leaves_live_leases_alone(pool: AsyncConnectionPool[Any]) -> None:
    run = await enqueue(pool, await make_thread(pool))
    await claim(pool, "live-worker")
    async with pool.connection() as conn:
        swept = await queue.sweep(conn, max_attempts=3)
    assert run["run_id"] not in {s["run_id"] for s in swept}
    assert await status(pool, run["run_id"]) == "running"


async def test_finish_is_fenced_by_the_lease_owner(pool: AsyncConnectionPool[Any]) -> None:
    tid = await make_thread(pool)
    run = await enqueue(pool, tid)
    await claim(pool, "owner-w")
    args: dict[str, Any] = dict(
        status="success", thread_status="idle", values={"v": 1}, interrupts={}, error=None, update_state=True
    )
    async with pool.connection() as conn:
        assert not await run_end.finish(conn, run["run_id"], "impostor", **args)
        assert await runs.status_of(conn, run["run_id"]) == "running"
        assert await run_end.finish(conn, run["run_id"], "owner-w", **args)
        assert not await run_end.finish(conn, run["run_id"], "owner-w", **args)  # once only
        thread = await threads.get(conn, TENANT, tid)
    assert thread["status"] == "idle" and thread["values"] == {"v": 1}


async def test_finish_says_whether_a_run_of_the_thread_waits(pool: AsyncConnectionPool[Any]) -> None:
    """The executor wakes the workers after a run's end only when this says so (issue 9: no claim
    round trip after every run), so a run queued behind another must be reported."""
    args: dict[str, Any] = dict(
        status="success", thread_status="idle", values={}, interrupts={}, error=None, update_state=True
    )
    alone, queued = await make_thread(pool), await make_thread(pool)
    only = await enqueue(pool, alone)
    first = await enqueue(pool, queued)
    await claim(pool, "w")  # one running run per thread: the second of `queued` stays pending
    second = await enqueue(pool, queued)
    async with pool.connection() as conn:
        ended_alone = await run_end.finish(conn, only["run_id"], "w", **args)
        ended_first = await run_end.finish(conn, first["run_id"], "w", **args)
    assert ended_alone is not None and not ended_alone.thread_busy
    assert ended_first is not None and ended_first.thread_busy
    assert await status(pool, second["run_id"]) == "pending"


async def test_requeue_gives_back_only_own_runs_with_a_new_attempt(pool: AsyncConnectionPool[Any]) -> None:
    run = await enqueue(pool, await make_thread(pool))
    await claim(pool, "drainer")
    async with pool.connection() as conn:
        assert await queue.requeue(conn, [str(run["run_id"])], "someone-else") == 0
        assert await queue.requeue(conn, [str(run["run_id"])], "drainer") == 1
        row = await runs.get(conn, TENANT, None, run["run_id"])
    assert row["status"] == "pending" and row["attempt"] == 2


async def test_create_starts_at_once_on_a_free_thread_and_queues_behind_a_busy_one(
    pool: AsyncConnectionPool[Any],
) -> None:
    tid = await make_thread(pool)
    async with pool.connection() as conn:
        first = await runs.create(conn, new_run(tid), worker_id="local", lease_seconds=LEASE)
        second = await runs.create(conn, new_run(tid), worker_id="local", lease_seconds=LEASE)
    assert first.started and first.run["status"] == "running"
    assert not second.started and second.run["status"] == "pending"


async def test_multitask_reject_interrupt_and_rollback(pool: AsyncConnectionPool[Any]) -> None:
    tid = await make_thread(pool)
    async with pool.connection() as conn:
        running = await runs.create(conn, new_run(tid), worker_id="local", lease_seconds=LEASE)
        queued = await runs.create(conn, new_run(tid), worker_id=None, lease_seconds=LEASE)
        with pytest.raises(Conflict):
            await runs.create(conn, new_run(tid, strategy="reject"), worker_id=None, lease_seconds=LEASE)
        interrupting = await runs.create(conn, new_run(tid, strategy="interrupt"), worker_id=None, lease_seconds=LEASE)
        assert interrupting.to_cancel == [str(running.run["run_id"])]
        assert interrupting.cancelled == [str(queued.run["run_id"])]
        assert await runs.status_of(conn, queued.run["run_id"]) == "interrupted"
        rolling = await runs.create(conn, new_run(tid, strategy="rollback"), worker_id=None, lease_seconds=LEASE)
        assert rolling.cancelled == [str(interrupting.run["run_id"])]
        assert await runs.status_of(conn, interrupting.run["run_id"]) is None  # rolled back: gone


async def test_create_on_a_missing_or_foreign_thread(pool: AsyncConnectionPool[Any]) -> None:
    missing = uuid.uuid4()
    async with pool.connection() as conn:
        with pytest.raises(NotFound):
            await runs.create(conn, new_run(missing), worker_id=None, lease_seconds=LEASE)
        created = await runs.create(conn, new_run(missing, create=True), worker_id=None, lease_seconds=LEASE)
        assert created.run["thread_id"] == missing
        foreign = new_run(missing, create=True)
        foreign.owner = "someone-else"
        with pytest.raises(NotFound):
            await runs.create(conn, foreign, worker_id=None, lease_seconds=LEASE)
