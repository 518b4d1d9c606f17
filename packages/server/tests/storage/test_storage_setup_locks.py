"""Start-up locks wait without holding a snapshot (issue 12): the checkpointer's setup runs
``CREATE INDEX CONCURRENTLY``, which waits for every older snapshot in the database; an instance
waiting inside ``pg_advisory_lock`` holds one, and Postgres broke that cycle by failing the waiting
instance's start-up with ``DeadlockDetected`` (seen as a flaky three-instance start)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.checkpointer import SETUP_LOCK_KEY, PooledPostgresSaver, setup_checkpointer
from cogni_server.storage.migrations import _LOCK_KEY, migrate
from cogni_server.storage.pool import open_pool


async def _waiter_survives_a_concurrent_index_build(
    database: str, key: int, waiter: Callable[[], Awaitable[Any]]
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as holder:
        await holder.execute("CREATE TABLE IF NOT EXISTS lock_probe (x int)")
        await holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0.5)  # the other instance is waiting for the lock now
        await asyncio.wait_for(
            holder.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS lock_probe_x ON lock_probe (x)"), 10
        )
        await holder.execute("DROP INDEX lock_probe_x")
        if waiting.done():  # failed (DeadlockDetected) instead of waiting for the lock
            raise AssertionError(f"the waiting start-up ended early: {waiting.exception()!r}")
        await holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
        await asyncio.wait_for(waiting, 30)


async def test_checkpointer_setup_waits_without_a_snapshot(database: str) -> None:
    pool: AsyncConnectionPool[Any] = await open_pool(database, min_size=1, max_size=3, connect_timeout=5)
    try:
        await _waiter_survives_a_concurrent_index_build(
            database, SETUP_LOCK_KEY, lambda: setup_checkpointer(pool, PooledPostgresSaver(pool))
        )
    finally:
        await pool.close()


async def test_migrations_wait_without_a_snapshot(database: str) -> None:
    await _waiter_survives_a_concurrent_index_build(database, _LOCK_KEY, lambda: migrate(database))
