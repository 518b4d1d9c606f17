"""The end of a run: the fenced finish (run row and thread summary in one transaction) and the
rollback of a cancelled run. Both lock the thread's row first, the lock order of ``storage.runs``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.storage.pool import Conn
from cogni_server.storage.runs import LOCK_THREAD_OF_RUNS, refresh_thread_status

# The fenced finish: the run update and the thread summary commit together, after LOCK_THREAD_OF_RUNS.
FINISH = (
    "WITH r AS (UPDATE runs SET status = %(run_status)s, worker_id = NULL, lease_expires_at = NULL,"
    " updated_at = now() WHERE run_id = %(run)s AND worker_id = %(worker)s AND status = 'running'"
    " RETURNING thread_id)"
    " UPDATE threads t SET status = CASE WHEN EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = t.thread_id"
    " AND x.run_id <> %(run)s AND x.status IN ('pending', 'running')) THEN 'busy' ELSE %(status)s END,"
    ' "values" = CASE WHEN %(upd)s THEN %(values)s ELSE t."values" END,'
    " interrupts = CASE WHEN %(upd)s THEN %(interrupts)s ELSE t.interrupts END,"
    " error = %(error)s, updated_at = now(),"
    " state_updated_at = CASE WHEN %(upd)s THEN now() ELSE t.state_updated_at END"
    " FROM r WHERE t.thread_id = r.thread_id RETURNING t.status"
)
DELETE_OWN_RUN = "DELETE FROM runs WHERE run_id = %s AND worker_id = %s RETURNING thread_id"


@dataclass(frozen=True, slots=True)
class Finished:
    """A run's end as recorded; ``thread_busy``: another run of its thread is pending or running, so
    the queue has work the end just made claimable (the worker is woken only then)."""

    thread_busy: bool


async def finish(
    conn: Conn,
    run_id: uuid.UUID | str,
    worker_id: str,
    *,
    status: str,
    thread_status: str,
    values: Any,
    interrupts: dict[str, Any],
    error: dict[str, Any] | None,
    update_state: bool,
) -> Finished | None:
    """Mark the run done and summarise the thread, fenced by the lease owner. None if we lost it.

    The thread's row is locked first (LOCK_THREAD_OF_RUNS); both statements go out in one pipeline.
    """
    async with conn.pipeline(), conn.transaction():
        await conn.execute(LOCK_THREAD_OF_RUNS, ([run_id],))
        cur = await conn.execute(
            FINISH,
            {
                "run": run_id,
                "worker": worker_id,
                "run_status": status,
                "status": thread_status,
                "values": Jsonb(values),
                "interrupts": Jsonb(interrupts),
                "error": Jsonb(error) if error is not None else None,
                "upd": update_state,
            },
        )
        row = await cur.fetchone()
    return None if row is None else Finished(thread_busy=row["status"] == "busy")


async def delete_cancelled(conn: Conn, run_id: uuid.UUID | str, worker_id: str) -> uuid.UUID | None:
    """Rollback: the run disappears (its checkpoints are deleted by the caller)."""
    async with conn.transaction():
        await conn.execute(LOCK_THREAD_OF_RUNS, ([run_id],))  # the thread first (lock order)
        cur = await conn.execute(DELETE_OWN_RUN, (run_id, worker_id))
        row = await cur.fetchone()
        if row is None:
            return None
        await refresh_thread_status(conn, row["thread_id"])
        return row["thread_id"]
