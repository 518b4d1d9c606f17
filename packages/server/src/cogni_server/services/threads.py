"""Threads: create, search, count, read, patch metadata, copy. Deleting is in ``services.deletion``."""

from __future__ import annotations

import uuid
from typing import Any

from cogni_server.errors import Invalid, Unsupported
from cogni_server.services.context import ServerContext
from cogni_server.storage import threads as thread_repo

SELECT_FIELDS = thread_repo.SELECT_FIELDS


async def create(
    ctx: ServerContext,
    tenant: str,
    *,
    thread_id: uuid.UUID | None,
    metadata: dict[str, Any] | None,
    if_exists: str,
    graph_id: str | None,
    supersteps: list[Any] | None = None,
    ttl: Any = None,
) -> dict[str, Any]:
    if supersteps:
        raise Unsupported("unsupported field for this server: supersteps")
    if ttl is not None:
        raise Unsupported("unsupported field for this server: ttl")
    meta = dict(metadata or {})
    if graph_id:
        if graph_id not in ctx.registry.graph_ids():
            raise Invalid(f"graph_id {graph_id!r} is not a graph of this server")
        meta.setdefault("graph_id", graph_id)
    async with ctx.pool.connection() as conn:
        return await thread_repo.create(
            conn, owner=tenant, thread_id=thread_id or uuid.uuid4(), metadata=meta, if_exists=if_exists
        )


async def search(
    ctx: ServerContext,
    tenant: str,
    *,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
    ids: list[uuid.UUID] | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
    extract: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    if extract:
        raise Unsupported("unsupported field for this server: extract")
    async with ctx.pool.connection() as conn:
        return await thread_repo.search(
            conn,
            tenant,
            metadata=metadata,
            values=values,
            status=status,
            ids=ids,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )


async def count(
    ctx: ServerContext,
    tenant: str,
    *,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
) -> int:
    async with ctx.pool.connection() as conn:
        return await thread_repo.count(conn, tenant, metadata=metadata, values=values, status=status)


async def get(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return await thread_repo.get(conn, tenant, thread_id)


async def patch(
    ctx: ServerContext, tenant: str, thread_id: uuid.UUID, *, metadata: dict[str, Any], ttl: Any = None
) -> dict[str, Any]:
    if ttl is not None:
        raise Unsupported("unsupported field for this server: ttl")
    async with ctx.pool.connection() as conn:
        return await thread_repo.patch_metadata(conn, tenant, thread_id, metadata)


async def copy(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return await thread_repo.copy(conn, tenant, thread_id, uuid.uuid4())
