"""Crons: the tenant's scheduled runs, and the scheduler's claim of due ticks.

The scheduler claims due rows with ``FOR UPDATE SKIP LOCKED`` inside the transaction that inserts
their runs and advances ``next_run_date``, so each tick fires once whatever the number of processes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from cogni_server.errors import Invalid, NotFound
from cogni_server.storage.pool import Conn

COLS = (
    "cron_id, assistant_id, thread_id, schedule, timezone, payload, metadata, next_run_date, end_time,"
    " enabled, on_run_completed, user_id, created_at, updated_at"
)
SORT_FIELDS = frozenset(
    {"cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"}
)

INSERT_CRON = (
    "INSERT INTO crons (cron_id, owner, assistant_id, thread_id, schedule, timezone, payload, metadata,"
    " next_run_date, end_time, enabled, on_run_completed, user_id)"
    " VALUES (%(cron_id)s, %(owner)s, %(assistant_id)s, %(thread_id)s, %(schedule)s, %(timezone)s, %(payload)s,"
    f" %(metadata)s, %(next_run_date)s, %(end_time)s, %(enabled)s, %(on_run_completed)s, %(user_id)s) RETURNING {COLS}"
)
SELECT_CRON = f"SELECT {COLS} FROM crons WHERE cron_id = %s AND owner = %s"
LOCK_CRON = f"SELECT {COLS} FROM crons WHERE cron_id = %s AND owner = %s FOR UPDATE"
UPDATE_CRON = (
    "UPDATE crons SET schedule = %(schedule)s, timezone = %(timezone)s, payload = %(payload)s,"
    " metadata = %(metadata)s, next_run_date = %(next_run_date)s, end_time = %(end_time)s, enabled = %(enabled)s,"
    " on_run_completed = %(on_run_completed)s, updated_at = now()"
    f" WHERE cron_id = %(cron_id)s AND owner = %(owner)s RETURNING {COLS}"
)
DELETE_CRON = "DELETE FROM crons WHERE cron_id = %s AND owner = %s"
SEARCH_TEMPLATE = (
    f"SELECT {COLS}, count(*) OVER () AS total FROM crons WHERE {{where}}"
    " ORDER BY {sort_by} {sort_order} NULLS LAST, cron_id LIMIT %(limit)s OFFSET %(offset)s"
)
COUNT_TEMPLATE = "SELECT count(*) AS n FROM crons WHERE {where}"
# Due ticks, oldest first; a tick is due when its time has come and it is not past the cron's end. Each with
# its sealed LLM key (null: none), which its run gets; only the scheduler reads it.
CLAIM_DUE = (
    f"SELECT {COLS}, owner, now() AS db_now,"
    " (SELECT s.llm_key FROM cron_secrets s WHERE s.cron_id = crons.cron_id) AS llm_key"
    " FROM crons WHERE enabled AND next_run_date <= now()"
    " AND (end_time IS NULL OR next_run_date <= end_time)"
    " ORDER BY next_run_date LIMIT %s FOR UPDATE SKIP LOCKED"
)
ADVANCE = "UPDATE crons SET next_run_date = %s WHERE cron_id = %s"
# a cron's sealed per-account LLM key (migration 0007): set at creation, replaced by a PATCH that sends one
UPSERT_SECRET = (
    "INSERT INTO cron_secrets (cron_id, llm_key) VALUES (%s, %s)"
    " ON CONFLICT (cron_id) DO UPDATE SET llm_key = EXCLUDED.llm_key, created_at = now()"
)

_FILTER_OWNER = "owner = %(owner)s"
_FILTER_ASSISTANT = "assistant_id = %(assistant_id)s"
_FILTER_THREAD = "thread_id = %(thread_id)s"
_FILTER_ENABLED = "enabled = %(enabled)s"
_FILTER_METADATA = "metadata @> %(metadata)s"


def cron_out(row: dict[str, Any]) -> dict[str, Any]:
    """The wire shape of a cron (the SDKs' ``Cron``)."""
    end_time = row.get("end_time")
    return {
        "cron_id": str(row["cron_id"]),
        "assistant_id": str(row["assistant_id"]),
        "thread_id": str(row["thread_id"]) if row.get("thread_id") else None,
        "schedule": row["schedule"],
        "payload": row["payload"],
        "metadata": row["metadata"],
        "next_run_date": row.get("next_run_date"),
        "end_time": end_time.isoformat() if isinstance(end_time, datetime) else None,
        "user_id": row.get("user_id") or "",
        "timezone": row.get("timezone"),
        "on_run_completed": row.get("on_run_completed"),
        "enabled": row["enabled"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _params(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    out["payload"] = Jsonb(values["payload"])
    out["metadata"] = Jsonb(values["metadata"])
    return out


async def create(conn: Conn, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a cron; ``values`` has every column of ``INSERT_CRON``."""
    cur = await conn.execute(INSERT_CRON, _params(values))
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def get(conn: Conn, owner: str, cron_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    cur = await conn.execute(LOCK_CRON if lock else SELECT_CRON, (cron_id, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"cron {cron_id} not found")
    return dict(row)


async def update(conn: Conn, values: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(UPDATE_CRON, _params(values))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"cron {values['cron_id']} not found")
    return dict(row)


async def delete(conn: Conn, owner: str, cron_id: uuid.UUID) -> None:
    cur = await conn.execute(DELETE_CRON, (cron_id, owner))
    if cur.rowcount == 0:
        raise NotFound(f"cron {cron_id} not found")


def _filters(
    owner: str,
    assistant_id: uuid.UUID | None,
    thread_id: uuid.UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    clauses = [_FILTER_OWNER]
    params: dict[str, Any] = {"owner": owner}
    if assistant_id is not None:
        clauses.append(_FILTER_ASSISTANT)
        params["assistant_id"] = assistant_id
    if thread_id is not None:
        clauses.append(_FILTER_THREAD)
        params["thread_id"] = thread_id
    if enabled is not None:
        clauses.append(_FILTER_ENABLED)
        params["enabled"] = enabled
    if metadata:
        clauses.append(_FILTER_METADATA)
        params["metadata"] = Jsonb(metadata)
    return " AND ".join(clauses), params


async def search(
    conn: Conn,
    owner: str,
    *,
    assistant_id: uuid.UUID | None,
    thread_id: uuid.UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the tenant's matching crons and how many match in all."""
    if sort_by not in SORT_FIELDS:
        raise Invalid(f"cannot sort crons by {sort_by!r}; use one of {sorted(SORT_FIELDS)}")
    if sort_order.lower() not in ("asc", "desc"):
        raise Invalid(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
    where, params = _filters(owner, assistant_id, thread_id, enabled, metadata)
    params.update(limit=limit, offset=offset)
    cur = await conn.execute(
        SEARCH_TEMPLATE.format(where=where, sort_by=sort_by, sort_order=sort_order.lower()), params
    )
    rows = [dict(r) for r in await cur.fetchall()]
    total = int(rows[0]["total"]) if rows else await count(conn, owner, assistant_id, thread_id, enabled, metadata)
    return rows, total


async def count(
    conn: Conn,
    owner: str,
    assistant_id: uuid.UUID | None,
    thread_id: uuid.UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
) -> int:
    where, params = _filters(owner, assistant_id, thread_id, enabled, metadata)
    cur = await conn.execute(COUNT_TEMPLATE.format(where=where), params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def claim_due(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """Lock up to ``limit`` due crons that no other scheduler holds; call inside a transaction."""
    cur = await conn.execute(CLAIM_DUE, (limit,))
    return [dict(r) for r in await cur.fetchall()]


async def store_secret(conn: Conn, cron_id: uuid.UUID, ciphertext: bytes) -> None:
    """Keep (or replace) the cron's sealed LLM key; in the transaction that creates or updates the cron."""
    await conn.execute(UPSERT_SECRET, (cron_id, ciphertext))


async def advance(conn: Conn, cron_id: uuid.UUID, next_run_date: datetime) -> None:
    await conn.execute(ADVANCE, (next_run_date, cron_id))
