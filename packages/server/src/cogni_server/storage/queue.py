"""The queue side of runs: workers claim pending rows with ``FOR UPDATE SKIP LOCKED``, renew their
leases, give runs back on drain; the sweeper re-queues runs whose lease lapsed; the queue's depth and
oldest age for the metrics."""

from __future__ import annotations

from typing import Any

from psycopg.errors import UniqueViolation

from cogni_server.storage.pool import Conn
from cogni_server.storage.runs import RUNS_COLS

# The oldest due pending run of each thread that has nothing running, oldest first, skipping rows
# another worker is claiming right now; they become ``running`` under this worker's lease.
CLAIM = (
    "WITH cand AS (SELECT DISTINCT ON (thread_id) run_id FROM runs r WHERE status = 'pending'"
    " AND run_after <= now() AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id"
    " AND x.status = 'running') ORDER BY thread_id, created_at),"
    " picked AS (SELECT r.run_id FROM runs r WHERE r.run_id IN (SELECT run_id FROM cand)"
    " AND r.status = 'pending' ORDER BY r.created_at LIMIT %s FOR UPDATE SKIP LOCKED)"
    " UPDATE runs SET status = 'running', worker_id = %s,"
    " lease_expires_at = now() + make_interval(secs => %s), updated_at = now()"
    f" FROM picked WHERE runs.run_id = picked.run_id RETURNING {RUNS_COLS}"
)
# Only the runs this worker is executing right now: a row it holds but no longer executes (its
# executor died) is left to lapse, so the sweeper gives it to another worker.
RENEW_LEASES = (
    "UPDATE runs SET lease_expires_at = now() + make_interval(secs => %s)"
    " WHERE run_id = ANY(%s::uuid[]) AND worker_id = %s AND status = 'running' RETURNING run_id"
)
REQUEUE = (
    "UPDATE runs SET status = 'pending', attempt = attempt + 1, worker_id = NULL, lease_expires_at = NULL,"
    " updated_at = now() WHERE run_id = ANY(%s::uuid[]) AND worker_id = %s AND status = 'running'"
)
# The threads of lapsed runs, locked before the runs (the lock order of storage/runs.py: a give-up marks
# its thread, and a thread delete holding the thread's lock waits for the run's row).
LOCK_THREADS_OF_LAPSED = (
    "SELECT t.thread_id FROM threads t WHERE t.thread_id IN (SELECT r.thread_id FROM runs r"
    " WHERE r.status = 'running' AND r.lease_expires_at < now()) ORDER BY t.thread_id FOR NO KEY UPDATE OF t"
)
# Only runs of the threads locked above: one whose lease lapsed meanwhile waits for the next sweep.
SWEEP_LAPSED = (
    "UPDATE runs SET status = CASE WHEN attempt >= %(max)s THEN 'error' ELSE 'pending' END,"
    " attempt = CASE WHEN attempt >= %(max)s THEN attempt ELSE attempt + 1 END,"
    " worker_id = NULL, lease_expires_at = NULL, updated_at = now()"
    " WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running' AND lease_expires_at < now()"
    " AND thread_id = ANY(%(threads)s::uuid[]) FOR UPDATE SKIP LOCKED) RETURNING run_id, thread_id, status, attempt"
)
MARK_THREAD_ERROR = "UPDATE threads SET status = 'error', updated_at = now() WHERE thread_id = %s"


async def claim(conn: Conn, worker_id: str, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
    """Claim up to ``limit`` runnable runs: the oldest pending run of threads with nothing running."""
    try:
        cur = await conn.execute(CLAIM, (limit, worker_id, lease_seconds))
    except UniqueViolation:
        return []  # another worker started a run of the same thread at the same instant: retry later
    return [dict(r) for r in await cur.fetchall()]


async def heartbeat(conn: Conn, worker_id: str, run_ids: list[str], lease_seconds: float) -> set[str]:
    """Renew the leases of the runs this worker executes; returns the ids renewed. A listed run not
    returned is no longer ours (another worker took it, or it ended): its executor must stop."""
    if not run_ids:
        return set()
    cur = await conn.execute(RENEW_LEASES, (lease_seconds, run_ids, worker_id))
    return {str(row["run_id"]) for row in await cur.fetchall()}


async def requeue(conn: Conn, run_ids: list[str], worker_id: str) -> int:
    """Give runs back to the queue (drain at shutdown): another worker resumes them."""
    cur = await conn.execute(REQUEUE, (run_ids, worker_id))
    return cur.rowcount


async def sweep(conn: Conn, max_attempts: int) -> list[dict[str, Any]]:
    """Re-queue runs whose lease lapsed (their worker died); give up after ``max_attempts``."""
    async with conn.transaction():
        cur = await conn.execute(LOCK_THREADS_OF_LAPSED)
        locked = [r["thread_id"] for r in await cur.fetchall()]
        if not locked:
            return []
        cur = await conn.execute(SWEEP_LAPSED, {"max": max_attempts, "threads": locked})
        rows = [dict(r) for r in await cur.fetchall()]
        for r in rows:
            if r["status"] == "error":
                await conn.execute(MARK_THREAD_ERROR, (r["thread_id"],))
        return rows


QUEUE_STATS = (
    "SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(run_after)), 0)::float8 AS oldest"
    " FROM runs WHERE status = 'pending' AND run_after <= now()"
)


async def queue_stats(conn: Conn) -> tuple[int, float]:
    """(depth, oldest age in seconds) of the queue, all tenants: runs ``pending`` whose ``run_after``
    has passed. One range scan of the partial index ``runs_pending_idx (run_after, created_at) WHERE
    status = 'pending'``. The age counts from ``run_after`` (when the run became due, not when it was
    created), so a delayed run is not "old" the moment its delay ends; 0 when nothing is due."""
    cur = await conn.execute(QUEUE_STATS)
    row = await cur.fetchone()
    assert row is not None
    return int(row["depth"]), max(float(row["oldest"]), 0.0)
