"""Assistants: CRUD, search/count with pagination headers, versions, graph, schemas, subgraphs.

Routes parse, authorise and delegate to ``services.assistants`` (and ``services.deletion``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cogni_server.api.context import context, principal
from cogni_server.api.models import (
    AssistantCountBody,
    AssistantCreateBody,
    AssistantLatestBody,
    AssistantPatchBody,
    AssistantSearchBody,
    AssistantVersionsBody,
)
from cogni_server.api.paging import check_select, page_args, page_response
from cogni_server.api.responses import JSONResponse
from cogni_server.auth import Principal
from cogni_server.services import assistants as assistant_service
from cogni_server.services import authz, deletion
from cogni_server.services.context import ServerContext

router = APIRouter(dependencies=[Depends(principal)], tags=["assistants"])


async def _may(
    request: Request, who: Principal, action: str, assistant_id: str, extra: dict[str, Any] | None = None
) -> ServerContext:
    """Custom auth: the assistants handler for ``action`` allows it on an assistant matching its filters."""
    ctx = context(request)
    value = {"assistant_id": assistant_id, **(extra or {})}
    filters = await authz.authorize(ctx, who, "assistants", action, value)
    if extra is not None:
        extra.update({k: v for k, v in value.items() if k != "assistant_id"})
    await authz.check_assistant(ctx, who, assistant_id, filters)
    return ctx


@router.post("/assistants")
async def create_assistant(
    body: AssistantCreateBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    ctx = context(request)
    value: dict[str, Any] = {
        "assistant_id": body.assistant_id,
        "graph_id": body.graph_id,
        "config": body.config or {},
        "context": body.context or {},
        "metadata": dict(body.metadata or {}),
        "if_exists": body.if_exists,
        "name": body.name or "Untitled",
    }
    await authz.authorize(ctx, who, "assistants", "create", value)
    row = await assistant_service.create(
        ctx,
        who.tenant,
        graph_id=body.graph_id,
        assistant_id=body.assistant_id,
        config=body.config or {},
        context=body.context or {},
        metadata=value.get("metadata") or {},
        name=body.name or "Untitled",
        description=body.description,
        if_exists=body.if_exists,
    )
    return JSONResponse(row)


@router.post("/assistants/search")
async def search_assistants(
    body: AssistantSearchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    check_select(body.select, assistant_service.SELECT_FIELDS)
    ctx = context(request)
    value = {"graph_id": body.graph_id, "metadata": body.metadata, "limit": body.limit, "offset": body.offset}
    metadata, possible = await authz.search_filter(ctx, who, "assistants", value, body.metadata)
    if not possible:
        return page_response([], 0, body.offset, body.select)
    rows, total = await assistant_service.search(
        ctx,
        who.tenant,
        metadata=metadata,
        graph_id=body.graph_id,
        name=body.name,
        **page_args(body),
    )
    return page_response(rows, total, body.offset, body.select)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCountBody, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx, value = context(request), {"graph_id": body.graph_id, "metadata": body.metadata}
    metadata, possible = await authz.search_filter(ctx, who, "assistants", value, body.metadata)
    n = await assistant_service.count(ctx, who.tenant, metadata=metadata, graph_id=body.graph_id, name=body.name)
    return JSONResponse(n if possible else 0)


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = await _may(request, who, "read", assistant_id)
    return JSONResponse(await assistant_service.resolve_assistant(ctx, who.tenant, assistant_id))


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatchBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    changes = body.model_dump(exclude_none=True)  # an explicit null means "leave as is", like an absent field
    ctx = await _may(request, who, "update", assistant_id, changes)
    return JSONResponse(await assistant_service.update(ctx, who.tenant, assistant_id, changes))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, request: Request, delete_threads: bool = False, who: Principal = Depends(principal)
) -> Response:
    ctx = await _may(request, who, "delete", assistant_id)
    await deletion.delete_assistant(ctx, who.tenant, assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@router.get("/assistants/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str, request: Request, xray: str = "false", who: Principal = Depends(principal)
) -> Response:
    level = assistant_service.parse_xray(xray)
    ctx = await _may(request, who, "read", assistant_id)
    return JSONResponse(await assistant_service.graph(ctx, who.tenant, assistant_id, level))


@router.get("/assistants/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    ctx = await _may(request, who, "read", assistant_id)
    return JSONResponse(await assistant_service.schemas(ctx, who.tenant, assistant_id))


@router.get("/assistants/{assistant_id}/subgraphs")
async def assistant_subgraphs(
    assistant_id: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    ctx = await _may(request, who, "read", assistant_id)
    return JSONResponse(await assistant_service.subgraphs(ctx, who.tenant, assistant_id, None, recurse))


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_ns(
    assistant_id: str, namespace: str, request: Request, recurse: bool = False, who: Principal = Depends(principal)
) -> Response:
    ctx = await _may(request, who, "read", assistant_id)
    subgraphs = await assistant_service.subgraphs(ctx, who.tenant, assistant_id, namespace, recurse)
    return JSONResponse(subgraphs)


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: AssistantVersionsBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    ctx = await _may(request, who, "read", assistant_id)
    rows = await assistant_service.versions(
        ctx, who.tenant, assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
    )
    return JSONResponse(rows)


@router.post("/assistants/{assistant_id}/latest")
async def assistant_latest(
    assistant_id: str, body: AssistantLatestBody, request: Request, who: Principal = Depends(principal)
) -> Response:
    ctx = await _may(request, who, "update", assistant_id, {"version": body.version})
    return JSONResponse(await assistant_service.set_latest(ctx, who.tenant, assistant_id, body.version))
