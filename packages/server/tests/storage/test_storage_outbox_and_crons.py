"""The webhook outbox is written by every path that ends a run (and by none that does not), its
lease fences senders; due crons are claimed by one scheduler at a time. Real Postgres, no server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from cogni_server.ids import uuid7
from cogni_server.storage import crons, queue, run_end, runs, webhooks
from cogni_server.storage.runs import NewRun

TENANT = "tenant-o"
LEASE = 30.0
HOOK = "http://hooks.example.com/x"


def new_run(thread_id: uuid.UUID, *, webhook: str | None = HOOK, strategy: str = "enqueue") -> NewRun:
    kwargs: dict[str, Any] = {"version": 2, "webhook": webhook}
    return NewRun(
        run_id=uuid7(),
        thread_id=thread_id,
        assistant_id=uuid.uuid4(),
        graph_id="g",
        owner=TENANT,
        metadata={"m": 1},
        kwargs=kwargs,
        multitask_strategy=strategy,
        if_not_exists="create",
        after_seconds=0.0,
        thread_metadata={},
    )


async def outbox(pool: AsyncConnectionPool[Any], run_id: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM webhook_outbox WHERE run_id = %s", (run_id,))
        return [dict(r) for r in await cur.fetchall()]


async def create(pool: AsyncConnectionPool[Any], new: NewRun, worker: str | None) -> runs.Created:
    async with pool.connection() as conn:
        return await runs.create(conn, new, worker_id=worker, lease_seconds=LEASE)


async def test_finish_writes_the_outbox_row_in_the_same_statement(pool: AsyncConnectionPool[Any]) -> None:
    new = new_run(uuid.uuid4())
    await create(pool, new, "w1")
    async with pool.connection() as conn:
        assert await run_end.finish(
            conn, new.run_id, "w2", status="success", thread_status="idle", values={"v": 1},
            interrupts={}, error=None, update_state=True,
        ) is None  # fmt: skip
        assert await outbox(pool, new.run_id) == []  # a worker that lost the lease writes nothing
        assert await run_end.finish(
            conn, new.run_id, "w1", status="error", thread_status="error", values={"v": 2},
            interrupts={}, error={"error": "E", "message": "m"}, update_state=True,
        )  # fmt: skip
    [row] = await outbox(pool, new.run_id)
    payload = row["payload"]
    assert row["url"] == HOOK and row["status"] == "pending" and row["owner"] == TENANT
    assert payload["status"] == "error" and payload["values"] == {"v": 2} and payload["error"]["error"] == "E"
    assert payload["run_started_at"] and payload["run_ended_at"] and payload["metadata"] == {"m": 1}


async def test_every_other_terminal_path_writes_one_row(pool: AsyncConnectionPool[Any]) -> None:
    tid = uuid.uuid4()
    running = new_run(tid)
    await create(pool, running, "w1")
    cancelled, rolled_back, replaced = new_run(tid), new_run(tid), new_run(tid)
    for n in (cancelled, rolled_back, replaced):
        await create(pool, n, None)
    async with pool.connection() as conn:
        await runs.cancel_pending(conn, [str(cancelled.run_id)], "interrupt")
        await runs.cancel_pending(conn, [str(rolled_back.run_id)], "rollback")  # deleted unfinished
    await create(pool, new_run(tid, strategy="interrupt", webhook=None), None)  # interrupts `replaced`
    async with pool.connection() as conn:
        await run_end.delete_cancelled(conn, running.run_id, "w1")  # a running run rolled back
    for n, status in ((cancelled, "interrupted"), (rolled_back, "interrupted"), (replaced, "interrupted")):
        assert [r["payload"]["status"] for r in await outbox(pool, n.run_id)] == [status]
    assert [r["payload"]["status"] for r in await outbox(pool, running.run_id)] == ["interrupted"]
    # a worker lost for good: the sweeper ends the run in error
    lost = new_run(uuid.uuid4())
    await create(pool, lost, "dead-worker")
    async with pool.connection() as conn:
        await conn.execute("UPDATE runs SET lease_expires_at = now() - interval '1s' WHERE run_id = %s", (lost.run_id,))
        await queue.sweep(conn, max_attempts=1)
    assert [r["payload"]["status"] for r in await outbox(pool, lost.run_id)] == ["error"]
    # no webhook, no row; a re-queue is not an end
    quiet = new_run(uuid.uuid4(), webhook=None)
    await create(pool, quiet, "w1")
    async with pool.connection() as conn:
        await queue.requeue(conn, [str(quiet.run_id)], "w1")
    assert await outbox(pool, quiet.run_id) == []


async def test_outbox_lease_fences_senders(pool: AsyncConnectionPool[Any]) -> None:
    new = new_run(uuid.uuid4())
    await create(pool, new, "w1")
    async with pool.connection() as conn:
        await run_end.finish(
            conn, new.run_id, "w1", status="success", thread_status="idle", values={},
            interrupts={}, error=None, update_state=True,
        )  # fmt: skip
        await conn.execute("UPDATE webhook_outbox SET next_attempt_at = now() + interval '1 hour'")
        await conn.execute("UPDATE webhook_outbox SET next_attempt_at = now() WHERE run_id = %s", (new.run_id,))
        [first] = await webhooks.claim(conn, "sender-a", 10, 60)
        assert await webhooks.claim(conn, "sender-b", 10, 60) == []  # leased
        assert first["attempts"] == 1
        assert not await webhooks.delivered(conn, first["delivery_id"], "sender-b", 200)
        await conn.execute("UPDATE webhook_outbox SET lease_expires_at = now() - interval '1s'")
        [again] = await webhooks.claim(conn, "sender-b", 10, 60)  # sender-a died: its lease lapsed
        assert again["delivery_id"] == first["delivery_id"] and again["attempts"] == 2
        assert not await webhooks.delivered(conn, first["delivery_id"], "sender-a", 200)
        assert await webhooks.delivered(conn, first["delivery_id"], "sender-b", 200)
    [row] = await outbox(pool, new.run_id)
    assert row["status"] == "delivered" and row["delivered_at"] is not None


async def _cron(pool: AsyncConnectionPool[Any], **over: Any) -> uuid.UUID:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT assistant_id FROM assistants LIMIT 1")
        row = await cur.fetchone()
        if row is None:
            aid = uuid.uuid4()
            await conn.execute("INSERT INTO assistants (assistant_id, graph_id, name) VALUES (%s, 'g', 'g')", (aid,))
        else:
            aid = row["assistant_id"]
        values = {
            "cron_id": uuid7(), "owner": TENANT, "assistant_id": aid, "thread_id": None, "schedule": "* * * * *",
            "timezone": None, "payload": {}, "metadata": {}, "next_run_date": datetime.now(UTC) - timedelta(seconds=1),
            "end_time": None, "enabled": True, "on_run_completed": "delete", "user_id": "", **over,
        }  # fmt: skip
        return (await crons.create(conn, values))["cron_id"]  # type: ignore[no-any-return]


async def test_a_due_cron_is_claimed_by_one_scheduler(pool: AsyncConnectionPool[Any]) -> None:
    due = await _cron(pool)
    ended = await _cron(pool, end_time=datetime.now(UTC) - timedelta(minutes=5))
    off = await _cron(pool, enabled=False)
    seen: list[set[uuid.UUID]] = []
    gate = asyncio.Event()

    async def scheduler(looked: asyncio.Event) -> None:
        async with pool.connection() as conn, conn.transaction():
            claimed = {r["cron_id"] for r in await crons.claim_due(conn, 100)}
            seen.append(claimed)
            looked.set()
            await gate.wait()  # hold the locks while the other one looks
            for cron_id in claimed:
                await crons.advance(conn, cron_id, datetime.now(UTC) + timedelta(minutes=1))

    looked = [asyncio.Event(), asyncio.Event()]
    first = asyncio.create_task(scheduler(looked[0]))
    await looked[0].wait()
    second = asyncio.create_task(scheduler(looked[1]))
    await looked[1].wait()
    gate.set()
    await asyncio.gather(first, second)
    assert due in seen[0] and due not in seen[1]
    assert not {ended, off} & (seen[0] | seen[1])
    async with pool.connection() as conn, conn.transaction():
        assert due not in {r["cron_id"] for r in await crons.claim_due(conn, 100)}  # advanced


async def test_finished_rows_past_retention_are_pruned_pending_ones_never(pool: AsyncConnectionPool[Any]) -> None:
    rows = {}
    for status in ("delivered", "failed", "refused", "pending"):
        new = new_run(uuid.uuid4())
        await create(pool, new, "w1")
        async with pool.connection() as conn:
            await run_end.finish(
                conn, new.run_id, "w1", status="success", thread_status="idle", values={},
                interrupts={}, error=None, update_state=True,
            )  # fmt: skip
            await conn.execute(
                "UPDATE webhook_outbox SET status = %s, updated_at = now() - interval '2 hours' WHERE run_id = %s",
                (status, new.run_id),
            )
        rows[status] = new.run_id
    fresh = new_run(uuid.uuid4())
    await create(pool, fresh, "w1")
    async with pool.connection() as conn:
        await run_end.finish(
            conn, fresh.run_id, "w1", status="success", thread_status="idle", values={},
            interrupts={}, error=None, update_state=True,
        )  # fmt: skip
        await conn.execute("UPDATE webhook_outbox SET status = 'delivered' WHERE run_id = %s", (fresh.run_id,))
        assert await webhooks.prune_finished(conn, keep_seconds=3600.0) >= 3
        assert await webhooks.prune_finished(conn, keep_seconds=3600.0) == 0  # idempotent
    for status, run_id in rows.items():
        assert len(await outbox(pool, run_id)) == (1 if status == "pending" else 0), status
    assert len(await outbox(pool, fresh.run_id)) == 1  # delivered within the retention: kept
