"""Thread TTLs: set on create/patch, refreshed when a run starts (``storage.runs``), and the
sweeper's view of expired threads. Deleting an expired thread only happens when nothing is in
flight on it, decided under the thread's row lock (run creation takes the same lock).
"""

from __future__ import annotations

import uuid
from typing import Any

from cogni_server.storage.pool import Conn

SET_TTL = (
    "UPDATE threads SET ttl_minutes = %(minutes)s, ttl_strategy = %(strategy)s,"
    " expires_at = now() + %(minutes)s * interval '1 minute' WHERE thread_id = %(t)s AND owner = %(owner)s"
)
SELECT_TTL = "SELECT ttl_minutes, ttl_strategy, expires_at FROM threads WHERE thread_id = %s AND owner = %s"
# Expired threads with nothing in flight, soonest deadline first.
EXPIRED = (
    "SELECT thread_id, owner, coalesce(ttl_strategy, 'delete') AS strategy, expires_at FROM threads t"
    " WHERE expires_at < now() AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id"
    " AND r.status IN ('pending', 'running')) ORDER BY expires_at LIMIT %s"
)
LOCK_IF_IDLE = (
    "SELECT 1 FROM threads t WHERE thread_id = %s AND owner = %s AND NOT EXISTS (SELECT 1 FROM runs r"
    " WHERE r.thread_id = t.thread_id AND r.status IN ('pending', 'running')) FOR UPDATE OF t"
)
# Re-checked after the lock: a run created while we waited for the lock is visible now.
HAS_INFLIGHT = "SELECT 1 FROM runs WHERE thread_id = %s AND status IN ('pending', 'running') LIMIT 1"
DELETE_THREAD = "DELETE FROM threads WHERE thread_id = %s AND owner = %s"
CLEAR_EXPIRY = "UPDATE threads SET expires_at = NULL WHERE thread_id = %s"


def ttl_out(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``ttl`` shown with ``?include=ttl``: None when the thread has none."""
    if row is None or row.get("ttl_minutes") is None:
        return None
    return {"strategy": row["ttl_strategy"], "ttl": row["ttl_minutes"], "expires_at": row["expires_at"]}


async def set_ttl(conn: Conn, owner: str, thread_id: uuid.UUID, minutes: float, strategy: str) -> None:
    await conn.execute(SET_TTL, {"minutes": minutes, "strategy": strategy, "t": thread_id, "owner": owner})


async def get_ttl(conn: Conn, owner: str, thread_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(SELECT_TTL, (thread_id, owner))
    return ttl_out(await cur.fetchone())


async def expired(conn: Conn, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(EXPIRED, (limit,))
    return [dict(r) for r in await cur.fetchall()]


async def delete_if_idle(conn: Conn, owner: str, thread_id: uuid.UUID) -> bool:
    """Delete the thread row (its runs cascade) only when nothing is pending or running on it."""
    async with conn.transaction():
        if not await lock_if_idle(conn, owner, thread_id):
            return False
        cur = await conn.execute(DELETE_THREAD, (thread_id, owner))
        return cur.rowcount == 1


async def lock_if_idle(conn: Conn, owner: str, thread_id: uuid.UUID) -> bool:
    """Inside a transaction: lock the thread when nothing is in flight on it."""
    cur = await conn.execute(LOCK_IF_IDLE, (thread_id, owner))
    if await cur.fetchone() is None:
        return False
    cur = await conn.execute(HAS_INFLIGHT, (thread_id,))
    return await cur.fetchone() is None


async def clear_expiry(conn: Conn, thread_id: uuid.UUID) -> None:
    await conn.execute(CLEAR_EXPIRY, (thread_id,))
