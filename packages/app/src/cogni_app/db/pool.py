"""AppDatabase: one async connection pool with dict rows, opened and closed by the app's lifespan.

A database restart kills every pooled connection at once. The pool checks a connection before handing
it out, and psycopg_pool walks through the dead ones one by one, sleeping 1, 2, 4, 8 s between them:
with five idle connections the first request after the database is back waited about 15 s. So the first
failed check drains the pool (every idle connection is closed and replaced by a new one), and the next
attempt gets a fresh connection as soon as the database accepts one.
"""

from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Conn = AsyncConnection[dict[str, Any]]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
"""Errors that say "the database or the connection went away", not "the statement is wrong"."""


def is_transient(exc: BaseException) -> bool:
    """True for a database error worth retrying (connection lost, server restarting, no connection to be had)."""
    return isinstance(exc, TRANSIENT_ERRORS)


class AppDatabase:
    """Owns the pool. `open()` does not migrate: `cogni-app migrate` (or `migrate(url)`) does."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=Conn,
            check=self._check,  # survive a database restart
            open=False,
        )

    async def _check(self, conn: Conn) -> None:
        """Before a connection is handed out: a dead one means the server restarted, so drain them all."""
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            await self.pool.drain()
            raise

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30.0)

    async def close(self) -> None:
        await self.pool.close()
