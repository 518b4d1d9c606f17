"""Threads: the row a tenant owns, plus a summary of its state (status, values, interrupts).

Every statement is a named constant; searches fill validated fragments (filters built here from
fixed clauses, sort columns checked against ``SORT_FIELDS``) into their templates.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.errors import Conflict, Invalid, NotFound
from cogni_server.storage.pool import Conn

COLS = 'thread_id, created_at, updated_at, state_updated_at, metadata, config, status, "values", interrupts, error'
SORT_FIELDS = frozenset({"thread_id", "status", "created_at", "updated_at", "state_updated_at"})
SELECT_FIELDS = frozenset(
    {
        "thread_id",
        "created_at",
        "updated_at",
        "state_updated_at",
        "metadata",
        "config",
        "context",
        "status",
        "values",
        "interrupts",
        "error",
    }
)

INSERT_THREAD = (
    f"INSERT INTO threads (thread_id, owner, metadata) VALUES (%s, %s, %s)"
    f" ON CONFLICT (thread_id) DO NOTHING RETURNING {COLS}"
)
SELECT_THREAD = f"SELECT {COLS} FROM threads WHERE thread_id = %s AND owner = %s"
THREAD_EXISTS = "SELECT 1 FROM threads WHERE thread_id = %s AND owner = %s"
THREAD_EXISTS_ANY_OWNER = "SELECT 1 FROM threads WHERE thread_id = %s"
PATCH_METADATA = (
    f"UPDATE threads SET metadata = metadata || %s, updated_at = now()"
    f" WHERE thread_id = %s AND owner = %s RETURNING {COLS}"
)
DELETE_THREAD = "DELETE FROM threads WHERE thread_id = %s AND owner = %s"
DELETE_THREAD_ANY_OWNER = "DELETE FROM threads WHERE thread_id = %s"
THREADS_OF_ASSISTANT = "SELECT thread_id FROM threads WHERE owner = %s AND metadata->>'assistant_id' = %s"
PING = "SELECT 1"
SEARCH_TEMPLATE = (
    "SELECT {cols}, count(*) OVER () AS total FROM threads WHERE {where}"
    " ORDER BY {sort_by} {sort_order}, thread_id LIMIT %(limit)s OFFSET %(offset)s"
)
COUNT_TEMPLATE = "SELECT count(*) AS n FROM threads WHERE {where}"
COPY_THREAD = (
    f'INSERT INTO threads (thread_id, owner, metadata, config, status, "values", interrupts)'
    f" SELECT %s, owner, metadata, config, CASE WHEN status = 'busy' THEN 'idle' ELSE status END,"
    f' "values", interrupts FROM threads WHERE thread_id = %s AND owner = %s RETURNING {COLS}'
)
COPY_CHECKPOINTS = (
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
    " checkpoint, metadata) SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
    " checkpoint, metadata || jsonb_build_object('thread_id', %s::text) FROM checkpoints"
    " WHERE thread_id = %s"
)
COPY_CHECKPOINT_BLOBS = (
    "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)"
    " SELECT %s, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs WHERE thread_id = %s"
)
COPY_CHECKPOINT_WRITES = (
    "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
    " channel, type, blob) SELECT %s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,"
    " type, blob FROM checkpoint_writes WHERE thread_id = %s"
)
SET_STATE_SUMMARY = (
    'UPDATE threads SET "values" = %s, interrupts = %s, status = coalesce(%s, status),'
    " updated_at = now(), state_updated_at = now() WHERE thread_id = %s"
)

# search filters: each a fixed clause with its named parameter
_FILTER_OWNER = "owner = %(owner)s"
_FILTER_METADATA = "metadata @> %(metadata)s"
_FILTER_VALUES = '"values" @> %(values)s'
_FILTER_STATUS = "status = %(status)s"
_FILTER_IDS = "thread_id = ANY(%(ids)s)"


def thread_out(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["thread_id"] = str(out["thread_id"])
    out.pop("owner", None)
    out.pop("total", None)
    if out.get("error") is None:
        out.pop("error", None)
    if "values" in out and out["values"] is None:
        out["values"] = {}
    return out


async def create(
    conn: Conn, *, owner: str, thread_id: uuid.UUID, metadata: dict[str, Any], if_exists: str
) -> dict[str, Any]:
    cur = await conn.execute(INSERT_THREAD, (thread_id, owner, Jsonb(metadata)))
    row = await cur.fetchone()
    if row is not None:
        return thread_out(row)
    if if_exists == "do_nothing":
        return await get(conn, owner, thread_id)  # another tenant's id answers 404, never its content
    raise Conflict(f"thread {thread_id} already exists")


async def get(conn: Conn, owner: str, thread_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(SELECT_THREAD, (thread_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_out(row)


async def exists(conn: Conn, owner: str, thread_id: uuid.UUID) -> bool:
    cur = await conn.execute(THREAD_EXISTS, (thread_id, owner))
    return await cur.fetchone() is not None


async def exists_any(conn: Conn, thread_id: uuid.UUID) -> bool:
    """Whether the thread exists at all, whoever owns it (internal bookkeeping only)."""
    cur = await conn.execute(THREAD_EXISTS_ANY_OWNER, (thread_id,))
    return await cur.fetchone() is not None


async def patch_metadata(conn: Conn, owner: str, thread_id: uuid.UUID, metadata: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(PATCH_METADATA, (Jsonb(metadata), thread_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_out(row)


async def delete(conn: Conn, owner: str, thread_id: uuid.UUID) -> None:
    cur = await conn.execute(DELETE_THREAD, (thread_id, owner))
    if cur.rowcount == 0:
        raise NotFound(f"thread {thread_id} not found")


async def delete_any(conn: Conn, thread_id: uuid.UUID) -> None:
    """Delete a thread whoever owns it (the temporary thread of a stateless run)."""
    await conn.execute(DELETE_THREAD_ANY_OWNER, (thread_id,))


async def ids_for_assistant(conn: Conn, owner: str, assistant_id: uuid.UUID) -> list[uuid.UUID]:
    """The tenant's threads whose runs used the assistant."""
    cur = await conn.execute(THREADS_OF_ASSISTANT, (owner, str(assistant_id)))
    return [row["thread_id"] for row in await cur.fetchall()]


async def ping(conn: Conn) -> None:
    """The health check's round trip."""
    await conn.execute(PING)


def _filters(
    owner: str,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
    ids: list[uuid.UUID] | None,
) -> tuple[str, dict[str, Any]]:
    clauses = [_FILTER_OWNER]
    params: dict[str, Any] = {"owner": owner}
    if metadata:
        clauses.append(_FILTER_METADATA)
        params["metadata"] = Jsonb(metadata)
    if values:
        clauses.append(_FILTER_VALUES)
        params["values"] = Jsonb(values)
    if status:
        clauses.append(_FILTER_STATUS)
        params["status"] = status
    if ids is not None:
        clauses.append(_FILTER_IDS)
        params["ids"] = ids
    return " AND ".join(clauses), params


def order_by(sort_by: str, sort_order: str) -> tuple[str, str]:
    """A validated sort column and direction (they are spliced into the statement)."""
    if sort_by not in SORT_FIELDS:
        raise Invalid(f"cannot sort threads by {sort_by!r}; use one of {sorted(SORT_FIELDS)}")
    if sort_order.lower() not in ("asc", "desc"):
        raise Invalid(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
    return sort_by, sort_order.lower()


async def search(
    conn: Conn,
    owner: str,
    *,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
    ids: list[uuid.UUID] | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the tenant's matching threads and the total that match (the same filters)."""
    column, direction = order_by(sort_by, sort_order)
    where, params = _filters(owner, metadata, values, status, ids)
    params.update(limit=limit, offset=offset)
    statement = SEARCH_TEMPLATE.format(cols=COLS, where=where, sort_by=column, sort_order=direction)
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    if rows:
        total = int(rows[0]["total"])
    else:  # past the last page, or nothing matches: count with the same filters
        total = await _count(conn, where, params)
    return [thread_out(r) for r in rows], total


async def count(
    conn: Conn, owner: str, *, metadata: dict[str, Any] | None, values: dict[str, Any] | None, status: str | None
) -> int:
    where, params = _filters(owner, metadata, values, status, None)
    return await _count(conn, where, params)


async def _count(conn: Conn, where: str, params: dict[str, Any]) -> int:
    cur = await conn.execute(COUNT_TEMPLATE.format(where=where), params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def copy(conn: Conn, owner: str, source: uuid.UUID, target: uuid.UUID) -> dict[str, Any]:
    """Copy the thread row and every checkpoint of it to a new thread id, in one transaction."""
    async with conn.transaction():
        cur = await conn.execute(COPY_THREAD, (target, source, owner))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"thread {source} not found")
        src, dst = str(source), str(target)
        await conn.execute(COPY_CHECKPOINTS, (dst, dst, src))
        await conn.execute(COPY_CHECKPOINT_BLOBS, (dst, src))
        await conn.execute(COPY_CHECKPOINT_WRITES, (dst, src))
        return thread_out(row)


async def set_state_summary(
    conn: Conn,
    thread_id: uuid.UUID,
    *,
    values: Any,
    interrupts: dict[str, Any],
    status: str | None = None,
) -> None:
    """Record the latest values/interrupts after a state change made outside a run."""
    await conn.execute(SET_STATE_SUMMARY, (Jsonb(values), Jsonb(interrupts), status, thread_id))
