"""The psycopg 3 connection pool shared by the repositories and the LangGraph checkpointer.

Connections are autocommit with dict rows (what ``AsyncPostgresSaver`` requires); repositories open
explicit transactions where several statements must commit together. JSON goes through orjson.

Postgres blips (a restart, a failover, connections terminated by an operator): the pool checks a
connection before handing it out and replaces a dead one, so a blip does not turn into errors for the
next requests. The check costs no round trip: a backend that ends a connection sends its last words
(or EOF), so an idle connection whose socket is readable is dead; ``with_retries`` repeats an operation whose connection
died under it, with backoff, for callers that must not give up on the first failure (the end of a
run, the drain's re-queue).
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cogni_server.serde import dumps_for_db

set_json_dumps(dumps_for_db)
set_json_loads(orjson.loads)

Conn = AsyncConnection[dict[str, Any]]
T = TypeVar("T")
log = logging.getLogger("cogni_server.storage")

# Errors that say "the database or the connection went away", not "the statement is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, PoolTimeout)


async def _connection_alive(conn: Conn) -> None:
    """The pool's check before handing a connection out: raise if the server has closed it.

    An idle connection has nothing to read (we never LISTEN); anything readable is the server's
    "terminating connection" error or EOF. A healthy connection that happens to have a notice
    waiting is discarded too, which only costs a reconnect.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        await conn.close()  # the pool replaces a closed connection (an open one would come back)
        raise psycopg.OperationalError("the server closed this connection while it was idle")


RECONNECT_ATTEMPT_SECONDS = 1.0
REGROW_DELAY_SECONDS = 0.25


class _RestartAware:
    """The pool's hooks for a database restart, which kills every pooled connection at once.

    The first dead connection found drains the pool (every idle one is replaced), instead of finding the
    others dead one request at a time. While the database is down, psycopg_pool retries a connection
    after 1, 2, 4, 8 s, so a request waiting through an outage got its connection up to ~2 s after the
    database was back (measured: 1.5-1.9 s after a 5 s outage); a reconnection now gives up after a
    second and, while a request waits, starts again a quarter of a second later.
    """

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[Conn] | None = None
        self._regrowing: set[asyncio.Future[None]] = set()

    async def check(self, conn: Conn) -> None:
        try:
            await _connection_alive(conn)
        except psycopg.OperationalError:
            if self.pool is not None:
                await self.pool.drain()
            raise

    def reconnect_failed(self, pool: AsyncConnectionPool[Conn]) -> None:
        if pool.get_stats().get("requests_waiting", 0):
            asyncio.get_running_loop().call_later(REGROW_DELAY_SECONDS, self._regrow)

    def _regrow(self) -> None:
        if self.pool is not None and not self.pool.closed:
            task = asyncio.ensure_future(self.pool.check())  # with no connection left, check() grows the pool
            self._regrowing.add(task)
            task.add_done_callback(self._regrowing.discard)


async def open_pool(url: str, *, min_size: int, max_size: int, connect_timeout: float) -> AsyncConnectionPool[Conn]:
    """Open the pool and wait until its minimum connections are up (fails fast when unreachable)."""
    hooks = _RestartAware()
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        check=hooks.check,
        reconnect_timeout=RECONNECT_ATTEMPT_SECONDS,
        reconnect_failed=hooks.reconnect_failed,
        open=False,
        timeout=connect_timeout,
        name="cogni",
    )
    hooks.pool = pool
    await pool.open(wait=True, timeout=connect_timeout)
    return pool


def is_transient(exc: BaseException) -> bool:
    """True for a database error worth retrying (connection lost, server restarting, no connection
    to be had), also when it is the cause of another exception (a graph wrapping it)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TRANSIENT_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def with_retries(
    pool: AsyncConnectionPool[Any],
    operation: Callable[[Conn], Awaitable[T]],
    *,
    what: str,
    limit: float,
    first_delay: float = 0.1,
) -> T:
    """Run ``operation`` on a pooled connection, again on a fresh one after a transient error, with
    exponential backoff, for up to ``limit`` seconds; other errors (and the last transient one)
    are raised. The operation must be safe to repeat (fenced updates, deletes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    delay = first_delay
    while True:
        try:
            async with pool.connection() as conn:
                return await operation(conn)
        except TRANSIENT_ERRORS as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("%s failed on a transient database error (%s); retrying in %.1fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
