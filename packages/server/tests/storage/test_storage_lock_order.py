"""Concurrency of run creation, finish, cancel, sweep and thread delete on one thread, called directly
against a real Postgres: the one lock order (a thread's row before its runs) and the snapshots taken after
a lock wait. Each test reproduces a race or deadlock the soak found. Seconds, no server process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from cogni_server.ids import uuid7
from cogni_server.storage import queue, run_end, runs, threads

from .queue_support import LEASE, TENANT, enqueue, make_thread, new_run, status


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

        async def finish() -> runs.Finished | None:
            async with pool.connection() as conn:
                return await run_end.finish(
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


async def finish_run(pool: AsyncConnectionPool[Any], run_id: uuid.UUID, worker: str) -> runs.Finished | None:
    async with pool.connection() as conn:
        return await run_end.finish(
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
