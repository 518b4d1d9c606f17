"""The store itself: ``langgraph-checkpoint-postgres``'s ``AsyncPostgresStore`` on our pool.

We keep the library's tables, SQL and migrations, with two changes:

- range filters (``$gt $gte $lt $lte``) with a number compare numbers: the library compares
  ``value->>key`` as text, so ``{"n": {"$gt": 9}}`` would miss 10 and 100. Strings still compare
  as text, as before.
- set-up is checked first: with ``store.index`` the database must have pgvector, and an existing
  ``store_vectors`` table must have the configured dimensions; anything else is a start-up error
  that says what to do, never a half-working store.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

SETUP_LOCK_KEY = 0x73746F72  # "stor": serialises the store's own migrations across instances
# Polled, never waited on inside the statement: a statement waiting for an advisory lock holds a
# snapshot, and the holder's set-up (CREATE INDEX CONCURRENTLY waits for every older snapshot) would
# wait for the waiter: instances started together hung at start-up (as the checkpointer's did).
TRY_SETUP_LOCK = "SELECT pg_try_advisory_lock(%s) AS locked"
LOCK_POLL_SECONDS = 0.1
RELEASE_SETUP_LOCK = "SELECT pg_advisory_unlock(%s)"
PGVECTOR_STATUS = (
    "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available,"
    " (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed"
)
VECTOR_COLUMN_DIMS = (
    "SELECT atttypmod AS dims FROM pg_attribute"
    " WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding' AND NOT attisdropped"
)
_RANGE_OPERATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_NUMERIC_RANGE = "(jsonb_typeof(value->%s) = 'number' AND (value->>%s)::numeric {op} %s)"


class StoreSetupError(RuntimeError):
    """The store cannot start with this configuration on this database (start-up error)."""


class CogniPostgresStore(AsyncPostgresStore):
    """``AsyncPostgresStore`` with numeric range filters (see the module docstring)."""

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
        sql_op = _RANGE_OPERATORS.get(op)
        if sql_op is not None and isinstance(value, int | float) and not isinstance(value, bool):
            return _NUMERIC_RANGE.format(op=sql_op), [key, key, value]
        return super()._get_filter_condition(key, op, value)

    async def aclose(self) -> None:
        """Stop the background batching task the base class starts in ``__init__``."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def open_postgres_store(
    pool: AsyncConnectionPool[Any], *, index: dict[str, Any] | None, ttl: dict[str, Any]
) -> CogniPostgresStore:
    """Build the store on ``pool`` and run its migrations (checked first when ``index`` is set)."""
    store = CogniPostgresStore(pool, index=index, ttl=ttl)  # type: ignore[arg-type]
    try:
        async with pool.connection() as conn:
            await _take_setup_lock(conn)
            try:
                if index is not None:
                    await _check_vector_support(conn, int(index["dims"]))
                await _setup(store)
            finally:
                await conn.execute(RELEASE_SETUP_LOCK, (SETUP_LOCK_KEY,))
    except BaseException:
        await store.aclose()
        raise
    return store


async def _take_setup_lock(conn: Any) -> None:
    """Poll the store's set-up lock (see TRY_SETUP_LOCK for why it is never waited on in a statement)."""
    while True:
        row = await (await conn.execute(TRY_SETUP_LOCK, (SETUP_LOCK_KEY,))).fetchone()
        if row["locked"]:
            return
        await asyncio.sleep(LOCK_POLL_SECONDS)  # idle between tries: no snapshot held


async def _check_vector_support(conn: Any, dims: int) -> None:
    row = await (await conn.execute(PGVECTOR_STATUS)).fetchone()
    if row["installed"] is None and not row["available"]:
        raise StoreSetupError(
            "store.index is set in langgraph.json (semantic search) but this Postgres has no pgvector"
            " extension. Install pgvector on the database server (Debian/Ubuntu: the"
            " postgresql-<major version>-pgvector package) and run CREATE EXTENSION vector as a superuser,"
            " use the embedded Postgres (it ships pgvector), or remove store.index from langgraph.json."
        )
    column = await (await conn.execute(VECTOR_COLUMN_DIMS)).fetchone()
    if column is not None and column["dims"] > 0 and column["dims"] != dims:
        raise StoreSetupError(
            f"store.index.dims is {dims} in langgraph.json but the database's store_vectors table holds"
            f" {column['dims']}-dimensional vectors. Keep dims at {column['dims']}, or drop the table"
            " (DROP TABLE store_vectors; DELETE FROM vector_migrations;) to re-embed from scratch."
        )


async def _setup(store: CogniPostgresStore) -> None:
    try:
        await store.setup()
    except pg_errors.InsufficientPrivilege as exc:
        raise StoreSetupError(
            "store.index needs the pgvector extension, and this database user may not create it:"
            f" {exc.diag.message_primary}. Ask a superuser to run CREATE EXTENSION vector; once on the"
            " database the server uses."
        ) from exc
    except pg_errors.FeatureNotSupported as exc:  # the extension vanished between check and setup
        raise StoreSetupError(f"the store's set-up failed: {exc.diag.message_primary}") from exc
