"""The LangGraph checkpointer on our pool, without AsyncPostgresSaver's instance-wide lock.

``AsyncPostgresSaver`` serialises every operation on one ``asyncio.Lock`` because it may be given a
single connection. Given a pool, each operation checks out its own connection, so the lock only makes
concurrent runs of a process queue behind each other's checkpoint writes. This subclass keeps the
saver's SQL and serialisation unchanged and only drops the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool


class PooledPostgresSaver(AsyncPostgresSaver):
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self._pool = pool

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with self._pool.connection() as conn:
            if pipeline and self.supports_pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif pipeline:
                async with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur


SETUP_LOCK_KEY = 0x636B7074  # "ckpt": serialises the checkpointer's own migrations across instances
TRY_SETUP_LOCK = "SELECT pg_try_advisory_lock(%s) AS locked"
RELEASE_SETUP_LOCK = "SELECT pg_advisory_unlock(%s)"
LOCK_POLL_SECONDS = 0.1


async def setup_checkpointer(pool: AsyncConnectionPool[Any], saver: AsyncPostgresSaver) -> None:
    """Run the checkpointer's migrations under an advisory lock.

    ``AsyncPostgresSaver.setup()`` reads its migration table, then inserts the versions it applied:
    two instances starting at the same moment on a fresh database both try the same inserts and
    one crashes with ``UniqueViolation``. Holding a session lock makes the second wait, then find
    everything applied.

    The others wait by polling ``pg_try_advisory_lock``, not inside ``pg_advisory_lock``: a statement
    waiting for the lock holds a snapshot, the holder's ``CREATE INDEX CONCURRENTLY`` waits for every
    older snapshot, and Postgres breaks that cycle by failing the waiter with ``DeadlockDetected``.
    """
    async with pool.connection() as conn:
        while True:
            if await _try_lock(conn):
                break
            await asyncio.sleep(LOCK_POLL_SECONDS)  # idle between tries: no snapshot held
        try:
            await saver.setup()
        finally:
            await conn.execute(RELEASE_SETUP_LOCK, (SETUP_LOCK_KEY,))


async def _try_lock(conn: Any) -> bool:
    cur = await conn.execute(TRY_SETUP_LOCK, (SETUP_LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row["locked"])
