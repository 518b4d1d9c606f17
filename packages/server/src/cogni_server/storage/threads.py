"""Threads: the row a tenant owns, plus a summary of its state (status, values, interrupts)."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.storage.errors import Conflict, NotFound
from cogni_server.storage.pool import Conn

_COLS = 'thread_id, created_at, updated_at, state_updated_at, metadata, config, status, "values", interrupts, error'
SORT_FIELDS = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
SELECT_FIELDS = {
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
    cur = await conn.execute(
        f"INSERT INTO threads (thread_id, owner, metadata) VALUES (%s, %s, %s)"
        f" ON CONFLICT (thread_id) DO NOTHING RETURNING {_COLS}",
        (thread_id, owner, Jsonb(metadata)),
    )
    row = await cur.fetchone()
    if row is not None:
        return thread_out(row)
    if if_exists == "do_nothing":
        return await get(conn, owner, thread_id)  # another tenant's id answers 404, never its content
    raise Conflict(f"thread {thread_id} already exists")


async def get(conn: Conn, owner: str, thread_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(f"SELECT {_COLS} FROM threads WHERE thread_id = %s AND owner = %s", (thread_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_out(row)


async def exists(conn: Conn, owner: str, thread_id: uuid.UUID) -> bool:
    cur = await conn.execute("SELECT 1 FROM threads WHERE thread_id = %s AND owner = %s", (thread_id, owner))
    return await cur.fetchone() is not None


async def exists_any(conn: Conn, thread_id: uuid.UUID) -> bool:
    """Whether the thread exists at all, whoever owns it (internal bookkeeping only)."""
    cur = await conn.execute("SELECT 1 FROM threads WHERE thread_id = %s", (thread_id,))
    return await cur.fetchone() is not None


async def patch_metadata(conn: Conn, owner: str, thread_id: uuid.UUID, metadata: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(
        f"UPDATE threads SET metadata = metadata || %s, updated_at = now()"
        f" WHERE thread_id = %s AND owner = %s RETURNING {_COLS}",
        (Jsonb(metadata), thread_id, owner),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_out(row)


async def delete(conn: Conn, owner: str, thread_id: uuid.UUID) -> None:
    cur = await conn.execute("DELETE FROM threads WHERE thread_id = %s AND owner = %s", (thread_id, owner))
    if cur.rowcount == 0:
        raise NotFound(f"thread {thread_id} not found")


async def delete_any(conn: Conn, thread_id: uuid.UUID) -> None:
    """Delete a thread whoever owns it (the temporary thread of a stateless run)."""
    await conn.execute("DELETE FROM threads WHERE thread_id = %s", (thread_id,))


async def delete_for_assistant(conn: Conn, owner: str, assistant_id: uuid.UUID) -> list[uuid.UUID]:
    """Delete the tenant's threads whose runs used the assistant; returns their ids."""
    cur = await conn.execute(
        "DELETE FROM threads WHERE owner = %s AND metadata->>'assistant_id' = %s RETURNING thread_id",
        (owner, str(assistant_id)),
    )
    return [row["thread_id"] for row in await cur.fetchall()]


async def ping(conn: Conn) -> None:
    """The health check's round trip."""
    await conn.execute("SELECT 1")


def _filters(
    owner: str,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
    ids: list[uuid.UUID] | None,
) -> tuple[str, dict[str, Any]]:
    clauses = ["owner = %(owner)s"]
    params: dict[str, Any] = {"owner": owner}
    if metadata:
        clauses.append("metadata @> %(metadata)s")
        params["metadata"] = Jsonb(metadata)
    if values:
        clauses.append('"values" @> %(values)s')
        params["values"] = Jsonb(values)
    if status:
        clauses.append("status = %(status)s")
        params["status"] = status
    if ids is not None:
        clauses.append("thread_id = ANY(%(ids)s)")
        params["ids"] = ids
    return " AND ".join(clauses), params


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
    where, params = _filters(owner, metadata, values, status, ids)
    params.update(limit=limit, offset=offset)
    cur = await conn.execute(
        f"SELECT {_COLS}, count(*) OVER () AS total FROM threads WHERE {where}"
        f" ORDER BY {sort_by} {sort_order}, thread_id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cur.fetchall()
    if rows:
        total = int(rows[0]["total"])
    else:
        total = await count(conn, owner, metadata=metadata, values=values, status=status)
    return [thread_out(r) for r in rows], total


async def count(
    conn: Conn, owner: str, *, metadata: dict[str, Any] | None, values: dict[str, Any] | None, status: str | None
) -> int:
    where, params = _filters(owner, metadata, values, status, None)
    cur = await conn.execute(f"SELECT count(*) AS n FROM threads WHERE {where}", params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def copy(conn: Conn, owner: str, source: uuid.UUID, target: uuid.UUID) -> dict[str, Any]:
    """Copy the thread row and every checkpoint of it to a new thread id, in one transaction."""
    async with conn.transaction():
        cur = await conn.execute(
            f'INSERT INTO threads (thread_id, owner, metadata, config, status, "values", interrupts)'
            f" SELECT %s, owner, metadata, config, CASE WHEN status = 'busy' THEN 'idle' ELSE status END,"
            f' "values", interrupts FROM threads WHERE thread_id = %s AND owner = %s RETURNING {_COLS}',
            (target, source, owner),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"thread {source} not found")
        src, dst = str(source), str(target)
        await conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
            " checkpoint, metadata) SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
            " checkpoint, metadata || jsonb_build_object('thread_id', %s::text) FROM checkpoints"
            " WHERE thread_id = %s",
            (dst, dst, src),
        )
        await conn.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)"
            " SELECT %s, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs WHERE thread_id = %s",
            (dst, src),
        )
        await conn.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
            " channel, type, blob) SELECT %s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,"
            " type, blob FROM checkpoint_writes WHERE thread_id = %s",
            (dst, src),
        )
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
    await conn.execute(
        'UPDATE threads SET "values" = %s, interrupts = %s, status = coalesce(%s, status),'
        " updated_at = now(), state_updated_at = now() WHERE thread_id = %s",
        (Jsonb(values), Jsonb(interrupts), status, thread_id),
    )
