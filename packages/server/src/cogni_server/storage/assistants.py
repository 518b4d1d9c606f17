"""Assistants and their versions. System assistants have no owner and are visible to every tenant."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from cogni_server.errors import Conflict, Forbidden, Invalid, NotFound
from cogni_server.ids import system_assistant_id
from cogni_server.storage.pool import Conn

COLS = "assistant_id, graph_id, name, description, config, context, metadata, version, created_at, updated_at"
_VISIBLE = "(owner = %(owner)s OR owner IS NULL)"
SORT_FIELDS = frozenset({"assistant_id", "graph_id", "name", "created_at", "updated_at"})

INSERT_SYSTEM = (
    "INSERT INTO assistants (assistant_id, owner, graph_id, name, metadata)"
    f" VALUES (%s, NULL, %s, %s, %s) ON CONFLICT (assistant_id) DO NOTHING RETURNING {COLS}"
)
SELECT_ANY = f"SELECT {COLS} FROM assistants WHERE assistant_id = %s"
SNAPSHOT_VERSION = (
    "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description, config,"
    " context, metadata) SELECT assistant_id, version, graph_id, name, description, config, context,"
    " metadata FROM assistants WHERE assistant_id = %s ON CONFLICT DO NOTHING"
)
INSERT_ASSISTANT = (
    "INSERT INTO assistants (assistant_id, owner, graph_id, name, description, config, context,"
    " metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    f" ON CONFLICT (assistant_id) DO NOTHING RETURNING {COLS}"
)
SELECT_VISIBLE = f"SELECT {COLS} FROM assistants WHERE assistant_id = %(id)s AND {_VISIBLE}"
SEARCH_TEMPLATE = (
    f"SELECT {COLS}, count(*) OVER () AS total FROM assistants WHERE {{where}}"
    " ORDER BY {sort_by} {sort_order}, assistant_id LIMIT %(limit)s OFFSET %(offset)s"
)
COUNT_TEMPLATE = "SELECT count(*) AS n FROM assistants WHERE {where}"
LOCK_OWNED = f"SELECT owner, {COLS} FROM assistants WHERE assistant_id = %(id)s AND {_VISIBLE} FOR UPDATE"
NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 AS v FROM assistant_versions WHERE assistant_id = %s"
UPDATE_ASSISTANT = (
    "UPDATE assistants SET graph_id = %s, name = %s, description = %s, config = %s, context = %s,"
    f" metadata = %s, version = %s, updated_at = now() WHERE assistant_id = %s RETURNING {COLS}"
)
DELETE_ASSISTANT = "DELETE FROM assistants WHERE assistant_id = %s"
VERSIONS_TEMPLATE = (
    "SELECT assistant_id, version, graph_id, name, description, config, context, metadata, created_at"
    " FROM assistant_versions WHERE {where} ORDER BY version DESC LIMIT %(limit)s OFFSET %(offset)s"
)
SET_LATEST = (
    "UPDATE assistants a SET graph_id = v.graph_id, name = v.name, description = v.description,"
    " config = v.config, context = v.context, metadata = v.metadata, version = v.version,"
    " updated_at = now() FROM assistant_versions v WHERE a.assistant_id = %s"
    " AND v.assistant_id = a.assistant_id AND v.version = %s"
    " RETURNING a.assistant_id, a.graph_id, a.name, a.description, a.config, a.context, a.metadata,"
    " a.version, a.created_at, a.updated_at"
)


def _out(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["assistant_id"] = str(row["assistant_id"])
    row.pop("owner", None)
    row.pop("total", None)
    return row


async def upsert_system(conn: Conn, graph_id: str) -> dict[str, Any]:
    """Create the graph's system assistant if missing (idempotent across restarts and instances)."""
    aid = system_assistant_id(graph_id)
    async with conn.transaction():
        cur = await conn.execute(INSERT_SYSTEM, (aid, graph_id, graph_id, Jsonb({"created_by": "system"})))
        row = await cur.fetchone()
        if row is not None:
            await _snapshot(conn, aid)
            return _out(row)
    cur = await conn.execute(SELECT_ANY, (aid,))
    found = await cur.fetchone()
    assert found is not None
    return _out(found)


async def _snapshot(conn: Conn, aid: uuid.UUID) -> None:
    await conn.execute(SNAPSHOT_VERSION, (aid,))


async def create(
    conn: Conn,
    *,
    owner: str,
    assistant_id: uuid.UUID,
    graph_id: str,
    config: dict[str, Any],
    context: dict[str, Any],
    metadata: dict[str, Any],
    name: str,
    description: str | None,
    if_exists: str,
) -> dict[str, Any]:
    async with conn.transaction():
        try:
            cur = await conn.execute(
                INSERT_ASSISTANT,
                (assistant_id, owner, graph_id, name, description, Jsonb(config), Jsonb(context), Jsonb(metadata)),
            )
        except UniqueViolation as exc:  # pragma: no cover - ON CONFLICT covers the key
            raise Conflict(str(exc)) from exc
        row = await cur.fetchone()
        if row is not None:
            await _snapshot(conn, assistant_id)
            return _out(row)
    if if_exists == "do_nothing":
        existing = await get(conn, owner, assistant_id)
        return existing
    raise Conflict(f"assistant {assistant_id} already exists")


async def get(conn: Conn, owner: str, assistant_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(SELECT_VISIBLE, {"id": assistant_id, "owner": owner})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    return _out(row)


async def search(
    conn: Conn,
    owner: str,
    *,
    metadata: dict[str, Any] | None,
    graph_id: str | None,
    name: str | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> tuple[list[dict[str, Any]], int]:
    if sort_by not in SORT_FIELDS or sort_order.lower() not in ("asc", "desc"):
        raise Invalid(f"cannot sort assistants by {sort_by!r} {sort_order!r}; use one of {sorted(SORT_FIELDS)}")
    where, params = _filters(owner, metadata, graph_id, name)
    params.update(limit=limit, offset=offset)
    statement = SEARCH_TEMPLATE.format(where=where, sort_by=sort_by, sort_order=sort_order.lower())
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    total = int(rows[0]["total"]) if rows else await count(conn, owner, metadata=metadata, graph_id=graph_id, name=name)
    return [_out(r) for r in rows], total


def _filters(
    owner: str, metadata: dict[str, Any] | None, graph_id: str | None, name: str | None
) -> tuple[str, dict[str, Any]]:
    clauses = [_VISIBLE]
    params: dict[str, Any] = {"owner": owner}
    if metadata:
        clauses.append("metadata @> %(metadata)s")
        params["metadata"] = Jsonb(metadata)
    if graph_id:
        clauses.append("graph_id = %(graph_id)s")
        params["graph_id"] = graph_id
    if name:
        clauses.append("name ILIKE %(name)s")
        params["name"] = f"%{name}%"
    return " AND ".join(clauses), params


async def count(
    conn: Conn, owner: str, *, metadata: dict[str, Any] | None, graph_id: str | None, name: str | None
) -> int:
    where, params = _filters(owner, metadata, graph_id, name)
    cur = await conn.execute(COUNT_TEMPLATE.format(where=where), params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def _owned(conn: Conn, owner: str, assistant_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(LOCK_OWNED, {"id": assistant_id, "owner": owner})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    if row["owner"] is None:
        raise Forbidden(f"assistant {assistant_id} is a system assistant and cannot be changed")
    return dict(row)


async def update(conn: Conn, owner: str, assistant_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply changes as a new version that becomes the latest."""
    async with conn.transaction():
        current = await _owned(conn, owner, assistant_id)
        cur = await conn.execute(NEXT_VERSION, (assistant_id,))
        version_row = await cur.fetchone()
        assert version_row is not None
        fields = {k: changes.get(k, current[k]) for k in ("graph_id", "name", "description", "config", "context")}
        metadata = {**current["metadata"], **changes["metadata"]} if "metadata" in changes else current["metadata"]
        cur = await conn.execute(
            UPDATE_ASSISTANT,
            (
                fields["graph_id"],
                fields["name"],
                fields["description"],
                Jsonb(fields["config"]),
                Jsonb(fields["context"]),
                Jsonb(metadata),
                version_row["v"],
                assistant_id,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        await _snapshot(conn, assistant_id)
        return _out(row)


async def delete(conn: Conn, owner: str, assistant_id: uuid.UUID) -> None:
    async with conn.transaction():
        await _owned(conn, owner, assistant_id)
        await conn.execute(DELETE_ASSISTANT, (assistant_id,))


async def versions(
    conn: Conn, owner: str, assistant_id: uuid.UUID, *, metadata: dict[str, Any] | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    await get(conn, owner, assistant_id)
    clauses = ["assistant_id = %(id)s"]
    params: dict[str, Any] = {"id": assistant_id, "limit": limit, "offset": offset}
    if metadata:
        clauses.append("metadata @> %(metadata)s")
        params["metadata"] = Jsonb(metadata)
    cur = await conn.execute(VERSIONS_TEMPLATE.format(where=" AND ".join(clauses)), params)
    return [_out(r) for r in await cur.fetchall()]


async def set_latest(conn: Conn, owner: str, assistant_id: uuid.UUID, version: int) -> dict[str, Any]:
    async with conn.transaction():
        await _owned(conn, owner, assistant_id)
        cur = await conn.execute(SET_LATEST, (assistant_id, version))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"assistant {assistant_id} has no version {version}")
        return _out(row)
