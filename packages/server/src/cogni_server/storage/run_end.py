"""The end of a run: the fenced finish (run row and thread summary in one transaction) and the
rollback of a cancelled run. Both lock the thread's row first, the lock order of ``storage.runs``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.storage.pool import Conn
from cogni_server.storage.runs import LOCK_THREAD_OF_RUNS, refresh_thread_status

# The fenced finish: the run update and the thread summary commit together, after the thread's row is
# locked (the lock order of storage.runs), in one call: migration 0008 says why a function.
FINISH = (
    "SELECT cogni_finish_run(%(run)s, %(worker)s, %(run_status)s, %(status)s, %(values)s, %(interrupts)s,"
    " %(error)s, %(upd)s) AS status"
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

    One autocommit statement, one round trip (the function locks the thread's row first).
    """
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
    return None if row is None or row["status"] is None else Finished(thread_busy=row["status"] == "busy")


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
