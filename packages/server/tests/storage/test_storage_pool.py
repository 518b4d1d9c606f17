"""The pool under a Postgres blip (issue 12): connections killed by the server are not handed out,
and transient errors are retried by ``with_retries``."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from cogni_server.storage.pool import Conn, open_pool, with_retries


async def _terminate_pool_connections(database: str) -> int:
    """Terminate every other backend of the database and wait until each has exited."""
    name = database.rsplit("/", 1)[1]
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_the_pool_does_not_hand_out_connections_the_server_killed(database: str) -> None:
    pool = await open_pool(database, min_size=3, max_size=3, connect_timeout=5)
    try:
        assert await _terminate_pool_connections(database) >= 3
        for _ in range(6):  # every idle connection is dead now: each checkout must still work
            async with pool.connection() as conn:
                assert (await (await conn.execute("SELECT 1 AS one")).fetchone()) == {"one": 1}
    finally:
        await pool.close()


async def test_with_retries_rides_through_killed_connections(database: str) -> None:
    pool: AsyncConnectionPool[Any] = await open_pool(database, min_size=1, max_size=2, connect_timeout=5)
    calls = 0

    async def flaky(conn: Conn) -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            await _terminate_pool_connections(database)  # dies under the statement
        cur = await conn.execute("SELECT pg_sleep(0.05), 7 AS seven")
        row = await cur.fetchone()
        assert row is not None
        return int(row["seven"])

    try:
        assert await with_retries(pool, flaky, what="a flaky read", limit=10) == 7
        assert calls == 3

        async def broken(conn: Conn) -> None:
            await conn.execute("SELECT no_such_column FROM pg_class")

        with pytest.raises(psycopg.errors.UndefinedColumn):  # not transient: raised at once
            await with_retries(pool, broken, what="a broken query", limit=10)
    finally:
        await pool.close()


async def test_the_first_dead_connection_drains_the_pool(database: str) -> None:
    """A restart kills every pooled connection: found once, all idle ones are replaced together
    (not discovered dead one checkout at a time, each costing a failed check and a reconnect)."""
    pool = await open_pool(database, min_size=4, max_size=4, connect_timeout=5)
    try:
        await pool.wait(timeout=5)
        assert await _terminate_pool_connections(database) >= 4
        for _ in range(4):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
        assert pool.get_stats().get("connections_lost", 0) == 1
    finally:
        await pool.close()


async def test_a_request_waiting_through_an_outage_gets_a_connection_soon_after(database: str) -> None:
    """psycopg_pool alone retries a failed connection after 1, 2, 4 s: a request that waited through a
    4 s outage got its connection ~3 s after the database was back; now within about a second."""
    name = database.rsplit("/", 1)[1]
    pool = await open_pool(database, min_size=1, max_size=1, connect_timeout=5)
    admin = await psycopg.AsyncConnection.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(  # what a restart does: the database refuses connections, its backends die
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        loop = asyncio.get_running_loop()

        async def request() -> float:
            async with pool.connection(timeout=30) as conn:
                await conn.execute("SELECT 1")
            return loop.time()

        waiting = asyncio.create_task(request())
        await asyncio.sleep(4.0)
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        back = loop.time()
        served = await asyncio.wait_for(waiting, 30)
        assert served - back < 2.2, f"served {served - back:.2f} s after the database was back"
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
        await pool.close()
