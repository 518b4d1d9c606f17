"""The webhook outbox: rows are written by the ``runs_webhook_*`` triggers (migration 0002) in the
statement that ends a run; deliverers in every worker process claim due rows under a lease
(``FOR UPDATE SKIP LOCKED``), so a row is sent by one process at a time and a crashed sender's rows
are picked up again when its lease lapses.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.storage.pool import Conn

CLAIM = (
    "UPDATE webhook_outbox SET lease_owner = %(owner)s, lease_expires_at = now() + make_interval(secs => %(lease)s),"
    " attempts = attempts + 1, updated_at = now()"
    " WHERE delivery_id IN (SELECT delivery_id FROM webhook_outbox WHERE status = 'pending'"
    " AND next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())"
    " ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING delivery_id, run_id, thread_id, owner, url, payload, attempts, created_at"
)
# Every outcome is fenced by the lease owner: a sender whose lease lapsed cannot overwrite the next.
MARK_DELIVERED = (
    "UPDATE webhook_outbox SET status = 'delivered', delivered_at = now(), response_status = %(code)s,"
    " last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    " WHERE delivery_id = %(id)s AND lease_owner = %(owner)s"
)
MARK_RETRY = (
    "UPDATE webhook_outbox SET next_attempt_at = now() + make_interval(secs => %(delay)s), last_error = %(error)s,"
    " response_status = %(code)s, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    " WHERE delivery_id = %(id)s AND lease_owner = %(owner)s"
)
MARK_FINAL = (
    "UPDATE webhook_outbox SET status = %(status)s, last_error = %(error)s, response_status = %(code)s,"
    " lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    " WHERE delivery_id = %(id)s AND lease_owner = %(owner)s"
)
RELEASE = (
    "UPDATE webhook_outbox SET lease_owner = NULL, lease_expires_at = NULL, attempts = greatest(attempts - 1, 0)"
    " WHERE delivery_id = ANY(%(ids)s::uuid[]) AND lease_owner = %(owner)s"
)
# The outcome, where the run's readers see it (``metadata.webhook_delivery``); the run may be gone.
RECORD_ON_RUN = "UPDATE runs SET metadata = metadata || %s WHERE run_id = %s"
# Finished rows past the retention, oldest first, a batch at a time (a pending row is never pruned).
PRUNE_FINISHED = (
    "DELETE FROM webhook_outbox WHERE delivery_id IN (SELECT delivery_id FROM webhook_outbox"
    " WHERE status <> 'pending' AND updated_at < now() - make_interval(secs => %(keep)s)"
    " ORDER BY updated_at LIMIT %(limit)s)"
)
FOR_RUN = (
    "SELECT delivery_id, url, status, attempts, last_error, response_status, created_at, delivered_at"
    " FROM webhook_outbox WHERE run_id = %s ORDER BY created_at"
)


async def claim(conn: Conn, owner: str, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
    cur = await conn.execute(CLAIM, {"owner": owner, "lease": lease_seconds, "limit": limit})
    return [dict(r) for r in await cur.fetchall()]


async def delivered(conn: Conn, delivery_id: uuid.UUID, owner: str, code: int) -> bool:
    cur = await conn.execute(MARK_DELIVERED, {"id": delivery_id, "owner": owner, "code": code})
    return cur.rowcount == 1


async def retry_later(
    conn: Conn, delivery_id: uuid.UUID, owner: str, *, delay: float, error: str, code: int | None
) -> bool:
    cur = await conn.execute(
        MARK_RETRY, {"id": delivery_id, "owner": owner, "delay": delay, "error": error[:2000], "code": code}
    )
    return cur.rowcount == 1


async def give_up(conn: Conn, delivery_id: uuid.UUID, owner: str, *, status: str, error: str, code: int | None) -> bool:
    """``failed`` (the receiver refused it or attempts ran out) or ``refused`` (destination not allowed)."""
    cur = await conn.execute(
        MARK_FINAL, {"id": delivery_id, "owner": owner, "status": status, "error": error[:2000], "code": code}
    )
    return cur.rowcount == 1


async def release(conn: Conn, delivery_ids: list[uuid.UUID], owner: str) -> None:
    """Hand unsent rows back at shutdown (the attempt did not happen)."""
    await conn.execute(RELEASE, {"ids": delivery_ids, "owner": owner})


async def record_on_run(conn: Conn, run_id: uuid.UUID, outcome: dict[str, Any]) -> None:
    await conn.execute(RECORD_ON_RUN, (Jsonb({"webhook_delivery": outcome}), run_id))


async def for_run(conn: Conn, run_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(FOR_RUN, (run_id,))
    return [dict(r) for r in await cur.fetchall()]


async def prune_finished(conn: Conn, keep_seconds: float, limit: int = 1000) -> int:
    """Delete up to ``limit`` delivered/failed/refused rows older than ``keep_seconds``; returns how many."""
    cur = await conn.execute(PRUNE_FINISHED, {"keep": keep_seconds, "limit": limit})
    return cur.rowcount
