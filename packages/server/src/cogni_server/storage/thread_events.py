"""SQL behind the thread-streaming protocol: the durable seq ceiling of each thread's event log, and
the run lookups the event stream and the commands need (which run a replay starts at, pending
resumes, a run of the thread)."""

from __future__ import annotations

import uuid
from typing import Any

from cogni_server.storage.pool import Conn

# Raise the ceiling past ``at_least`` by ``block`` numbers (hi/lo allocation); None when the thread is gone.
RESERVE_SEQ = (
    "UPDATE threads SET stream_seq = greatest(stream_seq, %(at_least)s) + %(block)s"
    " WHERE thread_id = %(thread_id)s RETURNING stream_seq"
)
SEQ_CEILING = "SELECT stream_seq FROM threads WHERE thread_id = %s"
THREAD_OWNER = "SELECT owner FROM threads WHERE thread_id = %s"
# Runs in flight on the thread, oldest first: a replay without ``since`` starts at the first of them.
INFLIGHT_RUNS = (
    "SELECT run_id::text AS run_id, status FROM runs WHERE thread_id = %s AND status IN ('pending', 'running')"
    " ORDER BY created_at, run_id"
)
LATEST_RUN = (
    "SELECT run_id::text AS run_id, status, graph_id, cancel_reason FROM runs WHERE thread_id = %s"
    " ORDER BY created_at DESC, run_id DESC LIMIT 1"
)
RUN_OF_THREAD = (
    "SELECT run_id::text AS run_id, status, graph_id, cancel_reason FROM runs WHERE thread_id = %s AND run_id = %s"
)
# The resume maps of runs still waiting or running: an interrupt they answer is no longer pending.
INFLIGHT_RESUMES = (
    "SELECT kwargs->'command'->'resume' AS resume FROM runs"
    " WHERE thread_id = %s AND status IN ('pending', 'running') AND kwargs->'command' ? 'resume'"
)


async def reserve_seq(conn: Conn, thread_id: str, at_least: int, block: int) -> int | None:
    """Move the thread's seq ceiling above ``at_least`` by ``block``; the new ceiling (None: no thread)."""
    cur = await conn.execute(RESERVE_SEQ, {"at_least": at_least, "block": block, "thread_id": thread_id})
    row = await cur.fetchone()
    return None if row is None else int(row["stream_seq"])


async def seq_ceiling(conn: Conn, thread_id: str) -> int | None:
    """The thread's durable seq ceiling (None: the thread does not exist)."""
    cur = await conn.execute(SEQ_CEILING, (thread_id,))
    row = await cur.fetchone()
    return None if row is None else int(row["stream_seq"])


async def owner_of(conn: Conn, thread_id: uuid.UUID) -> str | None:
    """Who owns the thread (None: it does not exist). Only for the tenancy check of event streams."""
    cur = await conn.execute(THREAD_OWNER, (thread_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["owner"])


async def inflight_runs(conn: Conn, thread_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(INFLIGHT_RUNS, (thread_id,))
    return [dict(r) for r in await cur.fetchall()]


async def latest_run(conn: Conn, thread_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(LATEST_RUN, (thread_id,))
    row = await cur.fetchone()
    return None if row is None else dict(row)


async def run_of_thread(conn: Conn, thread_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(RUN_OF_THREAD, (thread_id, run_id))
    row = await cur.fetchone()
    return None if row is None else dict(row)


async def answered_interrupts(conn: Conn, thread_id: uuid.UUID) -> set[str]:
    """Interrupt ids that a pending or running resume already answers."""
    cur = await conn.execute(INFLIGHT_RESUMES, (thread_id,))
    answered: set[str] = set()
    for row in await cur.fetchall():
        resume = row["resume"]
        if isinstance(resume, dict):
            answered.update(str(k) for k in resume)
    return answered


class PooledSeqStore:
    """The thread log's ``SeqStore`` on the connection pool (one short statement per call)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def ceiling(self, thread_id: str) -> int | None:
        async with self._pool.connection() as conn:
            return await seq_ceiling(conn, thread_id)

    async def reserve(self, thread_id: str, at_least: int, block: int) -> int | None:
        async with self._pool.connection() as conn:
            return await reserve_seq(conn, thread_id, at_least, block)
