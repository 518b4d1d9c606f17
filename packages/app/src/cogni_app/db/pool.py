"""AppDatabase: one async connection pool with dict rows, opened and closed by the app's lifespan.

A database restart kills every pooled connection at once. The pool checks a connection before handing
it out, and psycopg_pool walks through the dead ones one by one, sleeping 1, 2, 4, 8 s between them:
with five idle connections the first request after the database is back waited about 15 s. So the first
failed check drains the pool (every idle connection is closed and replaced by a new one), and the next
attempt gets a fresh connection as soon as the database accepts one. While the database is still down,
psycopg_pool retries a connection after 1, 2, 4, 8 s; a request waiting for one could wait up to twice the
outage. So a reconnection gives up after a second and, while a request is waiting, starts again a quarter
of a second later: the waiting request gets its connection within about a second of the database's return.
"""

import asyncio
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Conn = AsyncConnection[dict[str, Any]]
RECONNECT_ATTEMPT_SECONDS = 1.0
REGROW_DELAY_SECONDS = 0.25

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
"""Errors that say "the database or the connection went away", not "the statement is wrong"."""


def is_transient(exc: BaseException) -> bool:
    """True for a database error worth retrying (connection lost, server restarting, no connection to be had)."""
    return isinstance(exc, TRANSIENT_ERRORS)


class AppDatabase:
    """Owns the pool. `open()` does not migrate: `cogni-app migrate` (or `migrate(url)`) does."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._regrowing: set[asyncio.Future[None]] = set()
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=Conn,
            check=self._check,  # survive a database restart
            reconnect_timeout=RECONNECT_ATTEMPT_SECONDS,
            reconnect_failed=self._reconnect_failed,
            open=False,
        )

    async def _check(self, conn: Conn) -> None:
        """Before a connection is handed out: a dead one means the server restarted, so drain them all."""
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            await self.pool.drain()
            raise

    def _reconnect_failed(self, pool: AsyncConnectionPool[Conn]) -> None:
        """A new connection could not be made for a second: try again shortly if a request is waiting for one
        (psycopg_pool would retry after 2, 4, 8 s: up to twice the outage after the database is back)."""
        if pool.get_stats().get("requests_waiting", 0):
            asyncio.get_running_loop().call_later(REGROW_DELAY_SECONDS, self._regrow)

    def _regrow(self) -> None:
        if not self.pool.closed:
            task = asyncio.ensure_future(self.pool.check())  # with no connection left, check() grows the pool
            self._regrowing.add(task)
            task.add_done_callback(self._regrowing.discard)

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30.0)

    async def close(self) -> None:
        await self.pool.close()
