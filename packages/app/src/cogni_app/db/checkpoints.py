"""The in-process executor's conversations in the app database: LangGraph's Postgres checkpointer.

Conversations of graphs run in this process (COGNI_EXECUTOR=inproc) survive an app restart and are shared
by every app replica on the database, like the Agent Server's. The checkpointer's own migrations run at
start-up under an advisory lock so that replicas starting at once take turns; the others wait by polling
`pg_try_advisory_lock` (a session blocked inside `pg_advisory_lock` holds a snapshot, which the setup's
`CREATE INDEX CONCURRENTLY` would wait for: a deadlock).
"""

from __future__ import annotations

import asyncio

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row

from cogni_app.db.pool import AppDatabase

CHECKPOINT_SETUP_LOCK_KEY = 0x0C06_C4E7  # the app's checkpointer migrations (distinct from the server's)
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
POLL_SECONDS = 0.1


async def setup_checkpoints(url: str) -> None:
    """Create or upgrade the checkpoint tables; safe for any number of replicas starting together."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as lock_conn:
        while True:
            cur = await lock_conn.execute(TRY_LOCK, (CHECKPOINT_SETUP_LOCK_KEY,))
            row = await cur.fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(POLL_SECONDS)
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, prepare_threshold=0, row_factory=dict_row
            ) as conn:
                await AsyncPostgresSaver(conn).setup()
        finally:
            await lock_conn.execute(UNLOCK, (CHECKPOINT_SETUP_LOCK_KEY,))


def postgres_checkpointer(db: AppDatabase) -> AsyncPostgresSaver:
    """A checkpointer on the app's pool (autocommit, dict rows: what the saver needs)."""
    return AsyncPostgresSaver(db.pool)
