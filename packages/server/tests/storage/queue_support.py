"""Helpers shared by the queue and lock-order storage tests: runs and threads of one tenant."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

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
