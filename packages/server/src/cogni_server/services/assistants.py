"""Assistants: resolve what a request names (a UUID, or a graph id meaning its system assistant),
create, search, update, versions (deletion is in ``services.deletion``), and graph introspection."""

from __future__ import annotations

import uuid
from typing import Any

from cogni_server.errors import Invalid, NotFound
from cogni_server.graphs import GraphNotFound
from cogni_server.ids import system_assistant_id
from cogni_server.services.context import ServerContext
from cogni_server.storage import assistants as assistant_repo

SELECT_FIELDS = frozenset(
    {
        "assistant_id",
        "graph_id",
        "name",
        "description",
        "config",
        "context",
        "created_at",
        "updated_at",
        "metadata",
        "version",
    }
)


def assistant_uuid(ctx: ServerContext, value: str) -> uuid.UUID:
    """A UUID as given, or the system assistant of a graph id; NotFound for anything else."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        if value in ctx.registry.graph_ids():
            return system_assistant_id(value)
    raise NotFound(f"assistant {value!r} not found (not a UUID nor a graph id)")


async def resolve_assistant(ctx: ServerContext, tenant: str, value: str) -> dict[str, Any]:
    """System assistants come from memory (they are read-only); others from Postgres, tenant-scoped."""
    cached = ctx.system_assistants.get(value)
    if cached is not None:
        return cached
    aid = assistant_uuid(ctx, value)
    async with ctx.pool.connection() as conn:
        try:
            return await assistant_repo.get(conn, tenant, aid)
        except NotFound:
            raise NotFound(f"assistant {value!r} not found") from None


def check_graph(ctx: ServerContext, graph_id: str) -> None:
    if graph_id not in ctx.registry.graph_ids():
        raise Invalid(f"graph_id {graph_id!r} is not a graph of this server (have: {ctx.registry.graph_ids()})")


async def create(
    ctx: ServerContext,
    tenant: str,
    *,
    graph_id: str,
    assistant_id: str | None,
    config: dict[str, Any],
    context: dict[str, Any],
    metadata: dict[str, Any],
    name: str,
    description: str | None,
    if_exists: str,
) -> dict[str, Any]:
    check_graph(ctx, graph_id)
    aid = uuid.uuid4()
    if assistant_id:
        try:
            aid = uuid.UUID(assistant_id)
        except ValueError:
            raise Invalid(f"assistant_id must be a UUID, got {assistant_id!r}") from None
    async with ctx.pool.connection() as conn:
        return await assistant_repo.create(
            conn,
            owner=tenant,
            assistant_id=aid,
            graph_id=graph_id,
            config=config,
            context=context,
            metadata=metadata,
            name=name,
            description=description,
            if_exists=if_exists,
        )


async def search(
    ctx: ServerContext,
    tenant: str,
    *,
    metadata: dict[str, Any] | None,
    graph_id: str | None,
    name: str | None,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> tuple[list[dict[str, Any]], int]:
    async with ctx.pool.connection() as conn:
        return await assistant_repo.search(
            conn,
            tenant,
            metadata=metadata,
            graph_id=graph_id,
            name=name,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )


async def count(
    ctx: ServerContext, tenant: str, *, metadata: dict[str, Any] | None, graph_id: str | None, name: str | None
) -> int:
    async with ctx.pool.connection() as conn:
        return await assistant_repo.count(conn, tenant, metadata=metadata, graph_id=graph_id, name=name)


async def update(ctx: ServerContext, tenant: str, assistant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    if changes.get("graph_id") is not None:
        check_graph(ctx, changes["graph_id"])
    async with ctx.pool.connection() as conn:
        return await assistant_repo.update(conn, tenant, assistant_uuid(ctx, assistant_id), changes)


async def versions(
    ctx: ServerContext, tenant: str, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    async with ctx.pool.connection() as conn:
        return await assistant_repo.versions(
            conn, tenant, assistant_uuid(ctx, assistant_id), metadata=metadata, limit=limit, offset=offset
        )


async def set_latest(ctx: ServerContext, tenant: str, assistant_id: str, version: int) -> dict[str, Any]:
    async with ctx.pool.connection() as conn:
        return await assistant_repo.set_latest(conn, tenant, assistant_uuid(ctx, assistant_id), version)


def parse_xray(value: str) -> bool | int:
    """``xray`` as the clients send it: a boolean or a depth."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"xray must be a boolean or an integer, got {value!r}") from None


def _introspection(ctx: ServerContext, tenant: str, assistant: dict[str, Any]) -> dict[str, Any]:
    """What a graph factory receives for schemas and drawings (``assistants.read``): the
    assistant's config, as on the reference server, and the caller's view of the store."""
    config = dict(assistant.get("config") or {})
    config["configurable"] = {
        **(config.get("configurable") or {}),
        "assistant_id": str(assistant["assistant_id"]),
        "graph_id": assistant["graph_id"],
    }
    return {"config": config, "runtime_store": ctx.store.for_tenant(tenant)}


async def graph(ctx: ServerContext, tenant: str, assistant_id: str, xray: bool | int) -> dict[str, Any]:
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    return await ctx.registry.adrawable(assistant["graph_id"], xray, **_introspection(ctx, tenant, assistant))


async def schemas(ctx: ServerContext, tenant: str, assistant_id: str) -> dict[str, Any]:
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    return await ctx.registry.aschemas(assistant["graph_id"], **_introspection(ctx, tenant, assistant))


async def subgraphs(
    ctx: ServerContext, tenant: str, assistant_id: str, namespace: str | None, recurse: bool
) -> dict[str, Any]:
    assistant = await resolve_assistant(ctx, tenant, assistant_id)
    try:
        return await ctx.registry.asubgraphs(
            assistant["graph_id"], namespace, recurse, **_introspection(ctx, tenant, assistant)
        )
    except GraphNotFound:
        if namespace is None:
            raise
        raise NotFound(f"subgraph namespace {namespace!r} not found") from None
