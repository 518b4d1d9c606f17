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
from cogni_server.ids import uuid7
from cogni_server.storage import queue, runs, threads
from cogni_server.storage.runs import NewRun

TENANT = "tenant-q"
LEASE = 30.0


def new_run(thread_id: uuid.UUID, *, strategy: str = "enqueue", after: float = 0.0, create: bool = False) -> NewRun:
    return NewRun(
        run_id=uuid7(),
        thread_id=thread_id,
        assistant_id=uuid.uuid4(),
        graph_id="g",
        owner=TENANT,
        metadata={},
        kwargs={"version": 2},
        multitask_strategy=strategy,
        if_not_exists="create" if create else "reject",
        after_seconds=after,
        thread_metadata={"graph_id": "g"},
    )


async def make_thread(pool: AsyncConnectionPool[Any]) -> uuid.UUID:
    tid = uuid.uuid4()
    async with pool.connection() as conn:
        await threads.create(conn, owner=TENANT, thread_id=tid, metadata={}, if_exists="raise")
    return tid


async def enqueue(pool: AsyncConnectionPool[Any], tid: uuid.UUID, **kw: Any) -> dict[str, Any]:
    async with pool.connection() as conn:
        created = await runs.create(conn, new_run(tid, **kw), worker_id=None, lease_seconds=LEASE)
    assert not created.started
    return created.run


async def status(pool: AsyncConnectionPool[Any], run_id: Any) -> str | None:
    async with pool.connection() as conn:
        return await runs.status_of(conn, run_id)


async def claim(pool: AsyncConnectionPool[Any], worker: str, limit: int = 100) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await queue.claim(conn, worker, limit, LEASE)


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
        assert not await runs.finish(conn, run["run_id"], "impostor", **args)
        assert await runs.status_of(conn, run["run_id"]) == "running"
        assert await runs.finish(conn, run["run_id"], "owner-w", **args)
        assert not await runs.finish(conn, run["run_id"], "owner-w", **args)  # once only
        thread = await threads.get(conn, TENANT, tid)
    assert thread["status"] == "idle" and thread["values"] == {"v": 1}


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


async def test_a_creator_that_waited_for_the_threads_lock_sees_the_run_started_meanwhile(
    pool: AsyncConnectionPool[Any],
) -> None:
    """Found by the soak (bench/soak.py): concurrent `runs.wait` on one thread answered 500 now and then
    (UniqueViolation on runs_one_running_per_thread). A creator blocked on the thread's lock while another
    started a run must queue its run behind it, not try to start it too."""
    tid = await make_thread(pool)
    async with pool.connection() as holder:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE", (tid,))
            first = await runs.create(holder, new_run(tid), worker_id="w-1", lease_seconds=LEASE)
            assert first.started

            async def second() -> runs.Created:
                async with pool.connection() as conn:
                    return await runs._create_locked(conn, new_run(tid), worker_id="w-2", lease_seconds=LEASE)

            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # blocked on the thread's lock until the first creator commits
        created = await waiting
    assert not created.started and created.run["status"] == "pending"
    assert await status(pool, first.run["run_id"]) == "running"


async def test_starting_a_run_never_deadlocks_with_a_finishing_one(pool: AsyncConnectionPool[Any]) -> None:
    """Found by the soak: `deadlock detected` (503 on runs.wait, retried end writes) under concurrent runs on
    one thread. The fast path waited for the thread's lock, then inserted a running run on a snapshot taken
    before the wait, so its unique check waited for a finishing run that was itself waiting for the lock."""
    tid = await make_thread(pool)
    finished_run = uuid7()
    async with pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM threads WHERE thread_id = %s FOR NO KEY UPDATE", (tid,))

        async def start() -> runs.Created:
            async with pool.connection() as conn:
                return await runs.create(conn, new_run(tid), worker_id="w-new", lease_seconds=LEASE)

        starting = asyncio.create_task(start())  # its statement's snapshot is taken now; it waits for the lock
        await asyncio.sleep(0.3)
        async with pool.connection() as other:  # a run started meanwhile (not through the thread's lock)
            await other.execute(
                "INSERT INTO runs (run_id, thread_id, assistant_id, graph_id, owner, status, worker_id,"
                " lease_expires_at) VALUES (%s, %s, %s, 'g', %s, 'running', 'w-old', now() + interval '30 s')",
                (finished_run, tid, uuid.uuid4(), TENANT),
            )

        async def finish() -> bool:
            async with pool.connection() as conn:
                return await runs.finish(
                    conn, finished_run, "w-old", status="success", thread_status="idle", values={},
                    interrupts={}, error=None, update_state=False,
                )  # fmt: skip

        finishing = asyncio.create_task(finish())  # updates its run, then waits for the thread's lock
        await asyncio.sleep(0.3)
    async with asyncio.timeout(15):
        created, finished = await asyncio.gather(starting, finishing)
    assert finished
    assert created.run["status"] in ("pending", "running")


async def start_running(pool: AsyncConnectionPool[Any], tid: uuid.UUID, worker: str) -> uuid.UUID:
    """A running run inserted directly (not through the thread's lock), as a claim or fast path leaves it."""
    run_id = uuid7()
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, graph_id, owner, status, worker_id,"
            " lease_expires_at) VALUES (%s, %s, %s, 'g', %s, 'running', %s, now() + interval '30 s')",
            (run_id, tid, uuid.uuid4(), TENANT, worker),
        )
    return run_id


async def finish_run(pool: AsyncConnectionPool[Any], run_id: uuid.UUID, worker: str) -> bool:
    async with pool.connection() as conn:
        return await runs.finish(
            conn, run_id, worker, status="success", thread_status="idle", values={"done": True},
            interrupts={}, error=None, update_state=True,
        )  # fmt: skip


async def test_finishing_a_run_never_deadlocks_with_a_creator_holding_the_threads_lock(
    pool: AsyncConnectionPool[Any],
) -> None:
    """Found by the 30-minute soak: FINISH locked its run's row, then waited for the thread's, while a
    creator held the thread's lock and inserted a running run on a snapshot that missed the finishing one
    (the fast path): its unique check waited for FINISH's transaction, a cycle (`deadlock detected`).
    FINISH now takes the thread's lock first, so the creator's insert meets the run still running and
    gets the UniqueViolation the fast path answers by taking the general path."""
    tid = await make_thread(pool)
    finishing_run = await start_running(pool, tid, "w-old")
    async with pool.connection() as creator:
        with pytest.raises(UniqueViolation):
            async with creator.transaction():
                await creator.execute(runs.LOCK_THREAD, (tid, TENANT))
                finishing = asyncio.create_task(finish_run(pool, finishing_run, "w-old"))
                await asyncio.sleep(0.5)
                assert not finishing.done()  # waits for the thread's lock
                params = runs._insert_params(new_run(tid), worker_id="w-new", lease_seconds=LEASE)
                await creator.execute(runs.CREATE_RUN, params)  # a creator whose snapshot missed the run
    async with asyncio.timeout(15):
        assert await finishing
    assert await status(pool, finishing_run) == "success"
    async with pool.connection() as conn:
        assert (await threads.get(conn, TENANT, tid))["status"] == "idle"


async def test_deleting_a_thread_never_deadlocks_with_a_finishing_run(pool: AsyncConnectionPool[Any]) -> None:
    """A thread delete locks the thread and then (cascade) its runs; FINISH locked its run and then the
    thread. Both now lock the thread first: the finish queued behind the delete finds its run gone."""
    tid = await make_thread(pool)
    run_id = await start_running(pool, tid, "w-old")
    async with pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM threads WHERE thread_id = %s FOR NO KEY UPDATE", (tid,))

        async def delete() -> None:
            async with pool.connection() as conn:
                await threads.delete(conn, TENANT, tid)

        deleting = asyncio.create_task(delete())  # first in line for the thread's lock
        await asyncio.sleep(0.3)
        finishing = asyncio.create_task(finish_run(pool, run_id, "w-old"))  # second
        await asyncio.sleep(0.3)
    async with asyncio.timeout(15):
        _, finished = await asyncio.gather(deleting, finishing)
    assert not finished  # the run went with its thread
    assert await status(pool, run_id) is None


async def test_cancelling_a_pending_run_never_deadlocks_with_an_interrupting_creator(
    pool: AsyncConnectionPool[Any],
) -> None:
    """Cancelling pending runs updated them and then the thread's status; a creator with
    multitask_strategy 'interrupt' holds the thread and then interrupts the same pending runs."""
    tid = await make_thread(pool)
    pending = await enqueue(pool, tid)
    async with pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM threads WHERE thread_id = %s FOR NO KEY UPDATE", (tid,))

        async def interrupt() -> runs.Created:
            async with pool.connection() as conn:
                return await runs.create(conn, new_run(tid, strategy="interrupt"), worker_id=None, lease_seconds=LEASE)

        async def cancel() -> list[dict[str, Any]]:
            async with pool.connection() as conn:
                return await runs.cancel_pending(conn, [str(pending["run_id"])], "interrupt")

        creating = asyncio.create_task(interrupt())  # first in line for the thread's lock
        await asyncio.sleep(0.3)
        cancelling = asyncio.create_task(cancel())
        await asyncio.sleep(0.3)
    async with asyncio.timeout(15):
        created, cancelled = await asyncio.gather(creating, cancelling)
    assert created.cancelled == [str(pending["run_id"])]  # the creator interrupted it first
    assert cancelled == []  # nothing left pending to cancel
    assert await status(pool, pending["run_id"]) == "interrupted"
    assert await status(pool, created.run["run_id"]) == "pending"


async def test_a_sweep_giving_up_never_deadlocks_with_a_thread_delete(pool: AsyncConnectionPool[Any]) -> None:
    """The sweeper gave up a lapsed run (its row) and then marked the thread `error`; a thread delete holds
    the thread and waits for the run's row. The sweep now locks the threads of lapsed runs first."""
    tid = await make_thread(pool)
    run_id = await start_running(pool, tid, "dead-worker")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE runs SET attempt = 3, lease_expires_at = now() - interval '1 s' WHERE run_id = %s", (run_id,)
        )
    async with pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM threads WHERE thread_id = %s FOR NO KEY UPDATE", (tid,))

        async def delete() -> None:
            async with pool.connection() as conn:
                await threads.delete(conn, TENANT, tid)

        async def sweep() -> list[dict[str, Any]]:
            async with pool.connection() as conn:
                return await queue.sweep(conn, max_attempts=3)

        deleting = asyncio.create_task(delete())  # first in line for the thread's lock
        await asyncio.sleep(0.3)
        sweeping = asyncio.create_task(sweep())
        await asyncio.sleep(0.3)
    async with asyncio.timeout(15):
        _, swept = await asyncio.gather(deleting, sweeping)
    assert run_id not in {s["run_id"] for s in swept}  # gone with its thread before the sweep reached it
    assert await status(pool, run_id) is None


async def test_a_finish_that_waited_for_the_thread_sees_the_run_queued_meanwhile(
    pool: AsyncConnectionPool[Any],
) -> None:
    """FINISH summarises the thread (`busy` while anything is in flight). It used to wait for the
    thread's lock inside its statement, whose snapshot predates a run queued meanwhile: `idle` with a
    pending run. The lock is now a statement of its own, and FINISH's snapshot is taken after it."""
    tid = await make_thread(pool)
    run_id = await start_running(pool, tid, "w-old")
    async with pool.connection() as creator:
        async with creator.transaction():
            await creator.execute(runs.LOCK_THREAD, (tid, TENANT))
            finishing = asyncio.create_task(finish_run(pool, run_id, "w-old"))
            await asyncio.sleep(0.5)
            queued = await runs.create(creator, new_run(tid), worker_id=None, lease_seconds=LEASE)
        async with asyncio.timeout(15):
            assert await finishing
        assert queued.run["status"] == "pending"
        assert (await threads.get(creator, TENANT, tid))["status"] == "busy"
