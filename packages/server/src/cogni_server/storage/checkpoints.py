"""SQL on the checkpointer's own tables that AsyncPostgresSaver does not offer: delete, prune, rollback."""

from __future__ import annotations

import uuid

from cogni_server.storage.pool import Conn

DELETE_THREAD_WRITES = "DELETE FROM checkpoint_writes WHERE thread_id = %s"
DELETE_THREAD_BLOBS = "DELETE FROM checkpoint_blobs WHERE thread_id = %s"
DELETE_THREAD_CHECKPOINTS = "DELETE FROM checkpoints WHERE thread_id = %s"
DELETE_RUN_CHECKPOINTS = (
    "DELETE FROM checkpoints WHERE thread_id = %s AND metadata->>'run_id' = %s RETURNING checkpoint_id"
)
DELETE_WRITES_OF_CHECKPOINTS = "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = ANY(%s)"
KEEP_LATEST_ROOT_CHECKPOINT = (
    "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id <> ("
    " SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '')"
    " AND checkpoint_ns = ''"
)
DELETE_ORPHAN_WRITES = (
    "DELETE FROM checkpoint_writes w WHERE thread_id = %s AND NOT EXISTS (SELECT 1 FROM checkpoints c"
    " WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns"
    " AND c.checkpoint_id = w.checkpoint_id)"
)


async def delete_thread(conn: Conn, thread_id: uuid.UUID | str) -> None:
    """Every checkpoint, write and blob of a thread."""
    tid = str(thread_id)
    async with conn.transaction():
        for statement in (DELETE_THREAD_WRITES, DELETE_THREAD_BLOBS, DELETE_THREAD_CHECKPOINTS):
            await conn.execute(statement, (tid,))


async def delete_run(conn: Conn, thread_id: uuid.UUID | str, run_id: uuid.UUID | str) -> int:
    """Checkpoints (and their pending writes) that a run wrote: what a rollback undoes."""
    tid = str(thread_id)
    async with conn.transaction():
        cur = await conn.execute(DELETE_RUN_CHECKPOINTS, (tid, str(run_id)))
        ids = [row["checkpoint_id"] for row in await cur.fetchall()]
        if ids:
            await conn.execute(DELETE_WRITES_OF_CHECKPOINTS, (tid, ids))
        return len(ids)


async def keep_latest(conn: Conn, thread_id: uuid.UUID | str) -> None:
    """Drop every checkpoint of the thread's root namespace except the latest (prune keep_latest)."""
    tid = str(thread_id)
    async with conn.transaction():
        await conn.execute(KEEP_LATEST_ROOT_CHECKPOINT, (tid, tid))
        await conn.execute(DELETE_ORPHAN_WRITES, (tid,))
