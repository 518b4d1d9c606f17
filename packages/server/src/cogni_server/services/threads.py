"""Threads: create (with a TTL, seeded by supersteps), search (with extract), count, read, patch
metadata and TTL, copy. Deleting is in ``services.deletion``."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import Any

from cogni_server.errors import Invalid
from cogni_server.services import supersteps as supersteps_service
from cogni_server.services.context import ServerContext
from cogni_server.services.thread_extract import check_extract, extracted
from cogni_server.services.thread_ttl_policy import parse_ttl, ttl_for_new_thread
from cogni_server.storage import purge as purge_repo
from cogni_server.storage import thread_ttl as ttl_repo
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
    meta = dict(metadata or {})
    if graph_id:
        if graph_id not in ctx.registry.graph_ids():
            raise Invalid(f"graph_id {graph_id!r} is not a graph of this server")
        meta.setdefault("graph_id", graph_id)
    thread_ttl = ttl_for_new_thread(ctx, ttl)
    async with AsyncExitStack() as graph_in_use:  # a factory's graph stays open until seeded
        seed = await supersteps_service.parse(ctx, supersteps, meta, graph_in_use, tenant) if supersteps else None
        tid = thread_id or uuid.uuid4()
        if thread_ttl is None and seed is None:  # one statement, autocommit: no BEGIN/COMMIT round trips
            async with ctx.pool.connection() as conn:
                return await thread_repo.create(conn, owner=tenant, thread_id=tid, metadata=meta, if_exists=if_exists)
        async with ctx.pool.connection() as conn, conn.transaction():
            created = thread_id is None or not await thread_repo.exists(conn, tenant, tid)
            thread = await thread_repo.create(conn, owner=tenant, thread_id=tid, metadata=meta, if_exists=if_exists)
            if thread_ttl is not None and created:
                await ttl_repo.set_ttl(conn, tenant, tid, *thread_ttl)
        if seed is not None and created:
            async with purge_repo.checkpoint_write_guard(ctx.pool, tenant):  # a purge starting now waits
                await supersteps_service.apply(ctx, seed[0], tid, meta["graph_id"], seed[1])
            return await get(ctx, tenant, tid)
    return thread


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
    paths = check_extract(extract)
    async with ctx.pool.connection() as conn:
        rows, total = await thread_repo.search(
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
    if paths:
        rows = [{**row, "extracted": extracted(row, paths)} for row in rows]
    return rows, total


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
    thread_ttl = parse_ttl(ttl) if ttl is not None else None
    async with ctx.pool.connection() as conn, conn.transaction():
        thread = await thread_repo.patch_metadata(conn, tenant, thread_id, metadata)
        if thread_ttl is not None:
            await ttl_repo.set_ttl(conn, tenant, thread_id, *thread_ttl)
        return thread


async def copy(ctx: ServerContext, tenant: str, thread_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return await thread_repo.copy(conn, tenant, thread_id, uuid.uuid4())
