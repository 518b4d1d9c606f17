"""Write one row now, on the proxy's event loop, before the client may see the call's cost.

The background writer (`writer.py`) runs after LiteLLM has answered, so a `kill -9` in between
lost the row of a call the client had already billed. This writer commits the row first; the
proxy's hooks (`callback.py`) await it before releasing the response or the stream's usage chunk.

It keeps a few idle async connections (one per concurrent write, at most `max_idle` kept) and
bounds every write by `timeout` (connect, lock waits and the insert). A failed write returns False
and logs; it never raises, and the caller lets the call through (see `callback.py` for why).
"""

from __future__ import annotations

import asyncio
import logging
import os

import psycopg

from cogni_litellm_sink.mapping import SpendRow
from cogni_litellm_sink.schema import DDL, LOCK_KEY, UPSERT
from cogni_litellm_sink.writer import DATABASE_URL_ENV

log = logging.getLogger("cogni_litellm_sink")

DEFAULT_TIMEOUT = 10.0
"""Seconds one pre-write may take before the call goes on without it (the background writer retries)."""


class PreWriter:
    """Commits single rows with async psycopg connections; table created on the first connection."""

    def __init__(self, database_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT, max_idle: int = 4) -> None:
        self._explicit_url = database_url
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
        self._pid = 0
        self.written = 0
        self.failed = 0

    @property
    def database_url(self) -> str | None:
        return self._explicit_url or os.environ.get(DATABASE_URL_ENV) or None

    async def write(self, row: SpendRow) -> bool:
        """Upsert `row` and commit; True once it is durable, False (logged) when it could not be."""
        if self.database_url is None:
            self.failed += 1
            return False
        conn = None
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._take()
                async with conn.transaction():
                    await conn.execute(UPSERT, row.values())
        except Exception as exc:  # never raise into LiteLLM
            self.failed += 1
            log.error("spend sink: pre-writing row %s failed: %s", row.call_id, exc)
            if conn is not None:
                await _close(conn)
            return False
        self.written += 1
        await self._give_back(conn)
        return True

    async def _take(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._pid != os.getpid():  # connections never cross a fork
            self._idle.clear()
            self._pid = os.getpid()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        conn = await psycopg.AsyncConnection.connect(
            self.database_url or "", autocommit=True, connect_timeout=max(int(self._timeout), 1)
        )
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            await conn.execute(DDL)
        return conn

    async def _give_back(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        if len(self._idle) < self._max_idle and not conn.closed:
            self._idle.append(conn)
        else:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    try:
        await conn.close()
    except Exception as exc:  # a broken connection may fail to close; it is dropped either way
        log.debug("spend sink: closing a connection failed: %s", exc)
