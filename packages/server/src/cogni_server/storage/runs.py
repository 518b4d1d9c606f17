"""Runs: creation (multitask rules, inserted already claimed when a local slot is free), reads and
cancellation. The run's end is in ``storage.run_end``, the queue side (claim, lease, sweep, stats) in
``storage.queue``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from cogni_server.errors import Conflict, NotFound
from cogni_server.storage import run_secrets
from cogni_server.storage.pool import Conn

COLS = (
    "run_id, thread_id, assistant_id, graph_id, owner, status, metadata, kwargs, multitask_strategy, attempt,"
    " created_at, updated_at, cancel_reason"
)
INFLIGHT = ("pending", "running")
RUNS_COLS = ", ".join("runs." + c.strip() for c in COLS.split(","))

# The one run insert: both creation paths select the new row's thread from a CTE named ``src``.
_INSERT_RUN = (
    "INSERT INTO runs (run_id, thread_id, assistant_id, graph_id, owner, status, metadata, kwargs,"
    " multitask_strategy, worker_id, lease_expires_at, run_after)"
    " SELECT %(run_id)s, src.thread_id, %(assistant_id)s, %(graph_id)s, %(owner)s, %(status)s, %(metadata)s,"
    " %(kwargs)s, %(strategy)s, %(worker)s,"
    " CASE WHEN %(worker)s::text IS NOT NULL THEN now() + make_interval(secs => %(lease)s) END,"
    " now() + make_interval(secs => %(after)s) FROM src"
    f" RETURNING {COLS}"
)
_MARK_THREAD_BUSY = (  # a run refreshes the thread's TTL (storage.thread_ttl)
    "UPDATE threads SET status = 'busy', updated_at = now(), metadata = metadata || %(tmeta)s,"
    " expires_at = CASE WHEN ttl_minutes IS NULL THEN expires_at ELSE now() + ttl_minutes * interval '1 minute' END"
    " WHERE thread_id IN (SELECT thread_id FROM ins)"
)
# Fast path: the thread exists, is the caller's, is not locked and has nothing in flight -> insert already
# running. SKIP LOCKED: a statement that waited for the lock would check "nothing in flight" on the snapshot
# it took before waiting, insert a second running run and wait for a finishing run's transaction, which
# itself waits for the thread's lock (a deadlock). A contended thread takes the general path instead.
CREATE_STARTED = (
    "WITH t AS (SELECT thread_id FROM threads WHERE thread_id = %(thread_id)s AND owner = %(owner)s"
    " FOR UPDATE SKIP LOCKED),"
    " src AS (SELECT t.thread_id FROM t WHERE NOT EXISTS (SELECT 1 FROM runs r"
    " WHERE r.thread_id = t.thread_id AND r.status IN ('pending', 'running'))),"
    f" ins AS ({_INSERT_RUN}), upd AS ({_MARK_THREAD_BUSY}) SELECT * FROM ins"
)
# General path, inside a transaction that already locked (or created) the thread.
CREATE_RUN = (
    f"WITH src AS (SELECT %(thread_id)s::uuid AS thread_id), ins AS ({_INSERT_RUN}),"
    f" upd AS ({_MARK_THREAD_BUSY}) SELECT * FROM ins"
)
# Two statements, not one: a statement that waited for the lock still reads with the snapshot it took
# before waiting, so it would miss a run the lock holder just committed (and then try to start a second
# running run on the thread: UniqueViolation). The second statement's snapshot is taken after the lock.
LOCK_THREAD = "SELECT t.thread_id FROM threads t WHERE t.thread_id = %s AND t.owner = %s FOR UPDATE"
INFLIGHT_RUNS = (
    "SELECT coalesce(array_agg(r.run_id::text || ':' || r.status), '{}') AS inflight"
    " FROM runs r WHERE r.thread_id = %s AND r.status IN ('pending', 'running')"
)
INSERT_BUSY_THREAD = (
    "INSERT INTO threads (thread_id, owner, metadata, status, ttl_minutes, ttl_strategy, expires_at)"
    " VALUES (%s, %s, %s, 'busy', %s::float8, %s, now() + %s::float8 * interval '1 minute')"
)
DELETE_RUNS = "DELETE FROM runs WHERE run_id = ANY(%s::uuid[])"
INTERRUPT_PENDING_FOR_MULTITASK = (
    "UPDATE runs SET status = 'interrupted', cancel_reason = 'multitask',"
    " updated_at = now() WHERE run_id = ANY(%s::uuid[]) AND status = 'pending'"
)
SELECT_RUN = f"SELECT {COLS} FROM runs WHERE run_id = %s AND owner = %s"
SELECT_THREAD_RUN = f"SELECT {COLS} FROM runs WHERE run_id = %s AND thread_id = %s AND owner = %s"
RUN_STATUS = "SELECT status FROM runs WHERE run_id = %s"
LIST_TEMPLATE = f"SELECT {COLS} FROM runs WHERE {{where}} ORDER BY created_at DESC LIMIT %(limit)s OFFSET %(offset)s"
OWNED_RUN_STATUS = "SELECT status FROM runs WHERE run_id = %s AND thread_id = %s AND owner = %s"
DELETE_RUN = "DELETE FROM runs WHERE run_id = %s"
ROLLBACK_PENDING = "DELETE FROM runs WHERE run_id = ANY(%s::uuid[]) AND status = 'pending' RETURNING run_id, thread_id"
CANCEL_PENDING = (
    "UPDATE runs SET status = 'interrupted', cancel_reason = 'cancelled', updated_at = now()"
    " WHERE run_id = ANY(%s::uuid[]) AND status = 'pending' RETURNING run_id, thread_id"
)
INFLIGHT_TEMPLATE = "SELECT run_id, thread_id, status FROM runs WHERE {where}"
# One lock order for every transaction that locks a thread and its runs: the thread's row first, then
# run rows. Creation, the thread-stream seq and thread deletes (cascading to runs) lock the thread first;
# a statement that locked a run and then waited for its thread closed a cycle with them (`deadlock
# detected`). NO KEY UPDATE: what an UPDATE of threads takes anyway, so foreign-key checks of inserts
# into runs and checkpoints are not blocked. A separate statement, so the next one's snapshot is taken
# after the wait (it sees runs committed meanwhile).
LOCK_THREAD_OF_RUNS = (
    "SELECT t.thread_id FROM threads t WHERE t.thread_id IN (SELECT r.thread_id FROM runs r"
    " WHERE r.run_id = ANY(%s::uuid[])) ORDER BY t.thread_id FOR NO KEY UPDATE OF t"
)
REFRESH_THREAD_STATUS = (
    "UPDATE threads SET status = CASE WHEN EXISTS (SELECT 1 FROM runs WHERE thread_id = %(t)s"
    " AND status IN ('pending', 'running')) THEN 'busy' WHEN status = 'busy' THEN 'idle' ELSE status END,"
    " updated_at = now() WHERE thread_id = %(t)s"
)


def run_out(row: dict[str, Any]) -> dict[str, Any]:
    """The wire shape of a run (what the SDK's ``Run`` expects)."""
    return {
        "run_id": str(row["run_id"]),
        "thread_id": str(row["thread_id"]),
        "assistant_id": str(row["assistant_id"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "status": row["status"],
        "metadata": row["metadata"],
        "kwargs": row["kwargs"],
        "multitask_strategy": row["multitask_strategy"],
        "cancel_reason": row.get("cancel_reason"),
    }


@dataclass
class NewRun:
    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: uuid.UUID
    graph_id: str
    owner: str
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: str
    if_not_exists: str
    after_seconds: float
    thread_metadata: dict[str, Any]
    temporary: bool = False
    # (minutes, strategy) for a thread this run creates: langgraph.json's default thread TTL
    thread_ttl: tuple[float, str] | None = None


@dataclass
class Created:
    run: dict[str, Any]
    started: bool
    to_cancel: list[str] = field(default_factory=list)  # running runs to stop (interrupt/rollback)
    cancelled: list[str] = field(default_factory=list)  # pending runs this insert cancelled


def _insert_params(new: NewRun, *, worker_id: str | None, lease_seconds: float) -> dict[str, Any]:
    return {
        "run_id": new.run_id,
        "thread_id": new.thread_id,
        "assistant_id": new.assistant_id,
        "graph_id": new.graph_id,
        "owner": new.owner,
        "status": "running" if worker_id is not None else "pending",
        "metadata": Jsonb(new.metadata),
        "kwargs": Jsonb(new.kwargs),
        "strategy": new.multitask_strategy,
        "worker": worker_id,
        "lease": lease_seconds,
        "after": max(new.after_seconds, 0.0),
        "tmeta": Jsonb(new.thread_metadata),
    }


async def create(
    conn: Conn, new: NewRun, *, worker_id: str | None, lease_seconds: float, secret: bytes | None = None
) -> Created:
    """Insert a run, applying the thread's multitask strategy, in one transaction.

    When ``worker_id`` is given (a local worker slot is free) and nothing else is in flight on the
    thread, the run is inserted already claimed, so the caller can start it without a queue hop.
    ``secret`` (the run's encrypted LLM key) is stored in the same transaction: no worker can claim
    the run before its key is there.
    """
    if secret is None:
        return await _create(conn, new, worker_id=worker_id, lease_seconds=lease_seconds, nested=False)
    async with conn.transaction():
        created = await _create(conn, new, worker_id=worker_id, lease_seconds=lease_seconds, nested=True)
        await run_secrets.store(conn, created.run["run_id"], secret)
        return created


async def _create(conn: Conn, new: NewRun, *, worker_id: str | None, lease_seconds: float, nested: bool) -> Created:
    if worker_id is not None and new.after_seconds <= 0:
        fast = await _create_started(conn, new, worker_id, lease_seconds, savepoint=nested)
        if fast is not None:
            return Created(run=fast, started=True)
    return await _create_locked(conn, new, worker_id=worker_id, lease_seconds=lease_seconds)


async def _create_locked(conn: Conn, new: NewRun, *, worker_id: str | None, lease_seconds: float) -> Created:
    """The general path: lock (or create) the thread, apply the multitask strategy, insert."""
    async with conn.transaction():
        cur = await conn.execute(LOCK_THREAD, (new.thread_id, new.owner))
        row = await cur.fetchone()
        inflight: list[tuple[str, str]] = []
        if row is None:
            if new.if_not_exists != "create":
                raise NotFound(f"thread {new.thread_id} not found")
            try:
                minutes, strategy = new.thread_ttl if new.thread_ttl else (None, None)
                await conn.execute(
                    INSERT_BUSY_THREAD,
                    (new.thread_id, new.owner, Jsonb(new.thread_metadata), minutes, strategy, minutes),
                )
            except UniqueViolation:
                raise NotFound(f"thread {new.thread_id} not found") from None  # another tenant's id
        else:
            cur = await conn.execute(INFLIGHT_RUNS, (new.thread_id,))
            found = await cur.fetchone()
            inflight = [tuple(item.split(":", 1)) for item in (found["inflight"] if found else [])]
        to_cancel: list[str] = []
        cancelled: list[str] = []
        if inflight:
            if new.multitask_strategy == "reject":
                raise Conflict(f"thread {new.thread_id} is busy with a run; multitask_strategy is 'reject'")
            if new.multitask_strategy in ("interrupt", "rollback"):
                pending = [rid for rid, status in inflight if status == "pending"]
                to_cancel = [rid for rid, status in inflight if status == "running"]
                cancelled = pending
                if pending:
                    statement = DELETE_RUNS if new.multitask_strategy == "rollback" else INTERRUPT_PENDING_FOR_MULTITASK
                    await conn.execute(statement, (pending,))
        start = worker_id is not None and not inflight and new.after_seconds <= 0
        params = _insert_params(new, worker_id=worker_id if start else None, lease_seconds=lease_seconds)
        cur = await conn.execute(CREATE_RUN, params)
        inserted = await cur.fetchone()
        assert inserted is not None
        return Created(run=dict(inserted), started=start, to_cancel=to_cancel, cancelled=cancelled)


async def _create_started(
    conn: Conn, new: NewRun, worker_id: str, lease_seconds: float, *, savepoint: bool = False
) -> dict[str, Any] | None:
    """The common case in one statement (one round trip): the thread exists and is free.

    Returns None when it does not apply (no such thread, something in flight, or a concurrent
    creator won the thread's single running slot); the caller then takes the general path.
    """
    params = _insert_params(new, worker_id=worker_id, lease_seconds=lease_seconds)
    try:
        if savepoint:  # inside a transaction: a refusal must roll back to here, not abort the transaction
            async with conn.transaction():
                cur = await conn.execute(CREATE_STARTED, params)
                row = await cur.fetchone()
        else:
            cur = await conn.execute(CREATE_STARTED, params)
            row = await cur.fetchone()
    except UniqueViolation:
        return None
    return dict(row) if row is not None else None


async def get(conn: Conn, owner: str, thread_id: uuid.UUID | None, run_id: uuid.UUID) -> dict[str, Any]:
    if thread_id is None:
        cur = await conn.execute(SELECT_RUN, (run_id, owner))
    else:
        cur = await conn.execute(SELECT_THREAD_RUN, (run_id, thread_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return dict(row)


async def status_of(conn: Conn, run_id: uuid.UUID | str) -> str | None:
    cur = await conn.execute(RUN_STATUS, (run_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])


async def list_for_thread(
    conn: Conn, owner: str, thread_id: uuid.UUID, *, status: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    clauses = ["thread_id = %(thread_id)s", "owner = %(owner)s"]
    params: dict[str, Any] = {"thread_id": thread_id, "owner": owner, "limit": limit, "offset": offset}
    if status:
        clauses.append("status = %(status)s")
        params["status"] = status
    cur = await conn.execute(LIST_TEMPLATE.format(where=" AND ".join(clauses)), params)
    return [dict(r) for r in await cur.fetchall()]


async def delete(conn: Conn, owner: str, thread_id: uuid.UUID, run_id: uuid.UUID) -> None:
    cur = await conn.execute(OWNED_RUN_STATUS, (run_id, thread_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    if row["status"] in INFLIGHT:
        raise Conflict(f"run {run_id} is {row['status']}; cancel it before deleting")
    await conn.execute(DELETE_RUN, (run_id,))


async def cancel_pending(conn: Conn, run_ids: list[str], action: str) -> list[dict[str, Any]]:
    """Cancel runs still waiting in the queue; returns the rows cancelled (the rest are running)."""
    async with conn.transaction():
        await conn.execute(LOCK_THREAD_OF_RUNS, (run_ids,))  # the thread first (lock order)
        cur = await conn.execute(ROLLBACK_PENDING if action == "rollback" else CANCEL_PENDING, (run_ids,))
        rows = [dict(r) for r in await cur.fetchall()]
        for thread_id in {r["thread_id"] for r in rows}:
            await refresh_thread_status(conn, thread_id)
        return rows


async def inflight(
    conn: Conn, owner: str, *, thread_id: uuid.UUID | None, run_ids: list[uuid.UUID] | None, status: str
) -> list[dict[str, Any]]:
    statuses = list(INFLIGHT) if status == "all" else [status]
    clauses = ["owner = %(owner)s", "status = ANY(%(statuses)s)"]
    params: dict[str, Any] = {"owner": owner, "statuses": statuses}
    if thread_id is not None:
        clauses.append("thread_id = %(thread_id)s")
        params["thread_id"] = thread_id
    if run_ids is not None:
        clauses.append("run_id = ANY(%(run_ids)s)")
        params["run_ids"] = run_ids
    cur = await conn.execute(INFLIGHT_TEMPLATE.format(where=" AND ".join(clauses)), params)
    return [dict(r) for r in await cur.fetchall()]


async def refresh_thread_status(conn: Conn, thread_id: uuid.UUID) -> None:
    await conn.execute(REFRESH_THREAD_STATUS, {"t": thread_id})
